"""Write the torchvision reference logits that tests/test_parity.py compares the Keras rebuilds with.

Needs torch and torchvision (not installed by CI: their wheels need a multi-GB torch build):

    python -m venv /tmp/tv && /tmp/tv/bin/pip install torch==2.14.1 torchvision==0.29.1 numpy
    PYTHONPATH=. /tmp/tv/bin/python tests/parity/make_fixtures.py

For every architecture it builds the torchvision model with 10 classes, fills
every parameter and batch-norm buffer from `seeded_state_dict` (tensor i of
the state dict drawn with seed BASE_SEED + i), runs a seeded batch of raw RGB
images through ImageNet normalisation and the model in eval mode, and writes
tests/parity/fixtures/<arch>.json: the tensor names and shapes, the seeds,
gains and the reference logits. The test regenerates the same weights.

Random weights easily make a deep network's output constant (the signal dies)
or huge (float32 then cannot resolve 1e-4). Convolutions get He gain 2; the
gain of the linear layers is then scaled so the largest logit is about 10,
and the script refuses to write a fixture whose two images give nearly the
same logits, since such a fixture could not catch a wrong backbone.
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/, where the stand-in weights live
from standin_weights import seeded_state_dict, standin_images  # noqa: E402

BASE_SEED = 1000
INPUT_SEED = 7
NUM_CLASSES = 10
IMAGE_SIZE = 32  # the smallest input every architecture takes (their last feature map is 1 x 1)
BATCH = 2
TARGET_LOGIT = 10.0
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
ARCHITECTURES = {  # keras-sign name -> torchvision builder
    "mobilenetv3_small": "mobilenet_v3_small",
    "resnet18": "resnet18",
    "shufflenetv2_x0_5": "shufflenet_v2_x0_5",
    "shufflenetv2_x1_0": "shufflenet_v2_x1_0",
    "shufflenetv2_x1_5": "shufflenet_v2_x1_5",
    "shufflenetv2_x2_0": "shufflenet_v2_x2_0",
}


def main(out_dir):
    torch.manual_seed(0)
    images = standin_images(INPUT_SEED, BATCH, IMAGE_SIZE)
    normalised = (images / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    batch = torch.from_numpy(np.ascontiguousarray(normalised.transpose(0, 3, 1, 2)))
    for name, builder in ARCHITECTURES.items():
        model = getattr(torchvision.models, builder)(weights=None, num_classes=NUM_CLASSES).eval()
        tensors = [(key, list(value.shape)) for key, value in model.state_dict().items()
                   if not key.endswith("num_batches_tracked")]
        gains = {"conv": 2.0, "linear": 1.0}
        # The largest logit grows as a power of the linear gain: 1/2 with one linear layer, 1 with two
        # (MobileNetV3's classifier). Measure the power from the last two tries and step to the target.
        tried, power = [], 0.5
        for attempt in range(12):
            if tried:
                if len(tried) > 1 and tried[-1][0] != tried[-2][0]:
                    power = np.log(tried[-1][1] / tried[-2][1]) / np.log(tried[-1][0] / tried[-2][0])
                gains["linear"] = float(f"{tried[-1][0] * (TARGET_LOGIT / tried[-1][1]) ** (1 / power):.3g}")
            weights = seeded_state_dict(tensors, BASE_SEED, gains)
            model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=False)
            with torch.no_grad():
                logits = model(batch).numpy()
            tried.append((gains["linear"], float(np.abs(logits).max())))
            if abs(tried[-1][1] / TARGET_LOGIT - 1) < 0.05:
                break
        spread = np.abs(logits[0] - logits[1]).max()
        if spread < 0.02 * np.abs(logits).max():  # still 2,000x the tolerance at logits near 10
            raise SystemExit(f"{name}: the two images give nearly the same logits ({spread:.3g}); change the seeds")
        fixture = {
            "arch": name,
            "torchvision": f"{builder} (torch {torch.__version__}, torchvision {torchvision.__version__})",
            "num_classes": NUM_CLASSES,
            "image_size": IMAGE_SIZE,
            "input_seed": INPUT_SEED,
            "base_seed": BASE_SEED,
            "gains": gains,
            "tensors": tensors,
            "logits": logits.round(6).tolist(),
        }
        path = Path(out_dir) / f"{name}.json"
        path.write_text(json.dumps(fixture, separators=(",", ":")) + "\n")
        print(f"{name}: {len(tensors)} tensors, logits |max| {np.abs(logits).max():.3f}, between images {spread:.3f} -> {path}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "fixtures")
