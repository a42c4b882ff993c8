"""keras-sign: train, compare and ship sign-language image classifiers.

Importing this package does not import Keras: the backend has to be chosen
first (see `keras_sign.backend.select_backend`).
"""

__version__ = "0.2.0"
