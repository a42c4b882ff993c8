"""`keras-sign models`: every registered architecture with its size and cost, counted from the built graph."""

import math

from keras_sign.models.flops import count_multiply_adds
from keras_sign.models.registry import available_models, build_model, get_spec
from keras_sign.tables import markdown_table

FUSION_EXAMPLE = "fusion:mobilenetv3_small"


def count_parameters(model):
    """Parameters as torchvision counts them: trainable weights, so batch norm's moving statistics are left out."""
    return sum(math.prod(w.shape) for w in model.trainable_weights)


def models_table(image_size=224, num_classes=1000):
    """A Markdown table: name, aliases, parameters, GMACs at `image_size` (a landmark model's whatever the
    image), ImageNet weights source."""
    rows = []
    # The CNNs, the models of a hand's landmarks, then a fusion model of the two (any CNN after `fusion:`).
    for name in [*available_models(inputs=None), FUSION_EXAMPLE]:
        model = build_model(name, num_classes, image_size)
        parameters = count_parameters(model)
        spec = get_spec(name)
        weights = "; ".join(f"{source}: {published.file_name}" for source, published in spec.weights.items()) or (
            "none: reads the hand's 21 landmarks (`--hands landmarks`)" if spec.inputs == "landmarks" else "none")
        if spec.inputs == "fusion":
            weights = f"the CNN's ({weights}); reads the hand's square and its landmarks (`--hands fusion`)"
        aliases = "fusion:<any CNN above>" if spec.inputs == "fusion" else ", ".join(spec.aliases) or "-"
        rows.append([name, aliases, f"{parameters:,}",
                     f"{count_multiply_adds(model) / 1e9:.3f}", weights])
    header = ["architecture", "aliases", "parameters", f"GMACs at {image_size} px", "ImageNet weights"]
    return markdown_table(header, rows, "llrrl")
