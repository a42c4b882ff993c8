"""Model station: a registry of Keras 3 rebuilds of torchvision architectures.

Example:
    >>> from keras_sign.models import build_model
    >>> model = build_model("mobilenetv3", num_classes=10, image_size=64)
"""

from keras_sign.models.registry import available_models, build_model, canonical_name

__all__ = ["available_models", "build_model", "canonical_name"]
