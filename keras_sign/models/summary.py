"""`keras-sign models`: every registered architecture with its size and cost, counted from the built graph."""

import math

from keras_sign.models.flops import count_multiply_adds
from keras_sign.models.pretrained import KERAS_APPLICATIONS_FILES, TORCHVISION_FILES
from keras_sign.models.registry import aliases_of, available_models, build_model


def count_parameters(model):
    """Parameters as torchvision counts them: trainable weights, so batch norm's moving statistics are left out."""
    return sum(math.prod(w.shape) for w in model.trainable_weights)


def models_table(image_size=224, num_classes=1000):
    """A Markdown table: name, aliases, parameters, GMACs at `image_size`, ImageNet weights source."""
    rows = [
        f"| architecture | aliases | parameters | GMACs at {image_size} px | ImageNet weights |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    for name in available_models():
        model = build_model(name, num_classes, image_size)
        parameters = count_parameters(model)
        sources = [f"torchvision {TORCHVISION_FILES[name]}"] if name in TORCHVISION_FILES else []
        if name in KERAS_APPLICATIONS_FILES:
            sources.append("keras.applications (imagenet-keras)")
        weights = "; ".join(sources) or "none"
        rows.append(
            f"| {name} | {', '.join(aliases_of(name)) or '-'} | {parameters:,} | "
            f"{count_multiply_adds(model) / 1e9:.3f} | {weights} |"
        )
    return "\n".join(rows)
