"""`python -m keras_sign.cli ...`: the command line, as the installed `keras-sign` runs it."""

from keras_sign.cli import main

main()
