"""Run keras-sign from a checkout: `python cli.py train ...` (installed, the command is `keras-sign`)."""

from keras_sign.cli import main

if __name__ == "__main__":
    main()
