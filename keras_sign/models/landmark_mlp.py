"""A small network on a hand's 21 landmarks (`keras_sign.hands.features`): the model that reads the hand
MediaPipe's landmark model found, not the photo's pixels, so the backdrop and the camera never reach it.

Two fully connected layers of 256 units with batch norm and ReLU, dropout, then the classifier: plain Keras
layers only, so `model.keras` loads in plain Keras and converts to TFLite as it is.
"""

from keras import layers

from keras_sign.models.registry import register

WIDTH = 256


@register("landmark_mlp", aliases=("landmarks",), parameters=339_688, features=WIDTH, embedding_layer="hidden_2",
          pool_layer="landmarks", inputs="landmarks")
def landmark_mlp(x, num_classes, dropout=None, bn_momentum=None, include_top=True, prefix=""):
    """`prefix` names the layers of the branch inside a fusion model (`keras_sign.models.fusion`)."""
    momentum = 0.9 if bn_momentum is None else bn_momentum
    for index in (1, 2):
        x = layers.Dense(WIDTH, use_bias=False, name=f"{prefix}dense_{index}")(x)
        x = layers.BatchNormalization(momentum=momentum, name=f"{prefix}bn_{index}")(x)
        x = layers.ReLU(name=f"{prefix}hidden_{index}")(x)
    if not include_top:
        return x
    x = layers.Dropout(0.3 if dropout is None else dropout, name="dropout")(x)
    return layers.Dense(num_classes, name="logits")(x)
