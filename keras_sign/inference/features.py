"""Two outputs from one pass: the features a model's classifier separates (t-SNE's points) and its class
probabilities.

    features, probabilities = penultimate_model(model, "mobilenetv3_small").predict_on_batch(images)
"""

import weakref



def penultimate_model(model, arch):
    """`model` (a registered `arch`) with two outputs: the features its classifier separates (the
    spec's `embedding_layer`: MobileNetV3's 1024-d hidden layer, the pooled features of ResNet and
    ShuffleNetV2) and its class probabilities, so one pass over the images yields both. An ensemble's
    features are its members' side by side (`features_and_probabilities`).

    Made once per model: training calibrates on validation and evaluates on test with the same one,
    so its prediction step is traced once, not once per use (about 2 s a run on a CPU)."""
    import keras

    from keras_sign.models.registry import get_spec

    if model in _PENULTIMATE:
        return _PENULTIMATE[model]
    if arch == "ensemble":
        _PENULTIMATE[model] = features_and_probabilities(model)
    else:
        _PENULTIMATE[model] = keras.Model(model.input,
                                          [model.get_layer(get_spec(arch).embedding_layer).output, model.output])
    return _PENULTIMATE[model]


_PENULTIMATE = weakref.WeakKeyDictionary()  # model -> its two-output view, gone with the model


def features_and_probabilities(ensemble):
    """The ensemble with two outputs, as `penultimate_model` gives a run's model: its members'
    penultimate features side by side (t-SNE's points) and the mean of their class probabilities."""
    import keras

    from keras_sign.inference.ensemble_model import ensemble_inputs
    from keras_sign.models.fusion import arch_of

    members = [layer for layer in ensemble.layers if layer.name.startswith("member_")]
    inputs, inputs_of = ensemble_inputs(members)
    features, probabilities = [], []
    for layer in members:
        index, arch = layer.name.split("_", 2)[1:]
        member_features, member_probabilities = penultimate_model(layer, arch_of(arch))(inputs_of(layer, index))
        features.append(keras.layers.Flatten()(member_features))
        probabilities.append(member_probabilities)
    return keras.Model(inputs if len(inputs) > 1 else inputs[0],
                       [keras.layers.Concatenate()(features), keras.layers.Average()(probabilities)])

