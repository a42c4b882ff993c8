"""A fusion model: a CNN on the hand's square and a landmark branch on its landmark features, joined before one
classifier. `--arch fusion:<cnn>` (e.g. `fusion:mobilenetv3_small`) builds it for any registered CNN.

The CNN is the registered architecture up to its global pooling (its layer names are kept, so its ImageNet
weights load as they do for the CNN alone); the landmark branch is `landmark_mlp` without its classifier. The
two feature vectors are concatenated (`fusion_features`: t-SNE's points), then dropout and one Dense layer
give the logits; in training the pixel branch is dropped whole for half of the examples. Every layer this
module adds is named `landmarks_*` or `fusion_*`: that is the head a frozen-backbone phase trains.
"""

PREFIX = "fusion:"
INPUTS = ("image", "landmarks")  # the model's inputs, in the order every runtime feeds them
HEAD_PREFIXES = ("landmarks_", "fusion_")
EMBEDDING_LAYER = "fusion_features"
PIXEL_BRANCH_DROPOUT = 0.5


def cnn_of(name):
    """The CNN part of a fusion name (`fusion:mobilenetv3` -> `mobilenetv3`), or None for another name."""
    return name[len(PREFIX):] if isinstance(name, str) and name.startswith(PREFIX) else None


def keras_name(arch):
    """The Keras model name of `fusion:<cnn>` (a model name cannot hold a colon)."""
    return arch.replace(":", "_")


def arch_of(model_name):
    """The architecture a Keras model name stands for: `fusion_<cnn>` is `fusion:<cnn>`, any other is itself."""
    prefix = keras_name(PREFIX)
    return PREFIX + model_name[len(prefix):] if model_name.startswith(prefix) else model_name


def build_fusion(spec, landmark_spec, num_classes, image_size, mean, std, dropout, bn_momentum, include_top, options):
    """The two-input Keras model of `spec` (the registry's spec of `fusion:<cnn>`): raw 0-255 RGB squares and
    landmark features in."""
    import keras
    from keras import layers

    from keras_sign.hands.features import FEATURES
    from keras_sign.models.blocks import classifier_output, normalize_inputs

    image = keras.Input((image_size, image_size, 3), name=INPUTS[0])
    landmarks = keras.Input((FEATURES,), name=INPUTS[1])
    pixels = spec.builder(normalize_inputs(image, mean, std), num_classes, bn_momentum=bn_momentum,
                          include_top=False, **options)
    hand = landmark_spec.builder(landmarks, num_classes, bn_momentum=bn_momentum, include_top=False,
                                 prefix=HEAD_PREFIXES[0])
    pixels = layers.Flatten(name="fusion_pixels")(pixels)
    # In training, the whole pixel branch is dropped for half of the examples (a Dropout whose mask is one number
    # per example): the classifier must also do with the landmarks alone, which carry over between datasets where
    # the pixels do not (docs/hands.md, "Fusion models": the alphabet's photos to 8 other people's, 0.524 -> 0.719).
    pixels = layers.Dropout(PIXEL_BRANCH_DROPOUT, noise_shape=(None, 1), name="fusion_pixel_dropout")(pixels)
    features = layers.Concatenate(name=EMBEDDING_LAYER)([pixels, hand])
    if include_top:
        x = layers.Dropout(0.3 if dropout is None else dropout, name="fusion_dropout")(features)
        features = classifier_output(layers.Dense(num_classes, name="fusion_logits")(x))
    return keras.Model([image, landmarks], features, name=keras_name(spec.name))
