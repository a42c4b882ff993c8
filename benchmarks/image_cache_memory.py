"""Peak memory and speed of the training input pipeline with decoded images in memory or on disk.

    python benchmarks/image_cache_memory.py --images 20000 --image-size 224

Generates a folder of N JPEG photos (256 x 256, 10 class folders, smooth colour fields with noise,
about the size of real photos), then, for `--image-cache memory` and `disk` each in a fresh process,
reads two epochs of training batches (batch 32, shuffled and augmented as `keras-sign train` does,
no model): the first decodes the files into the cache, the second reads the cache. Prints a
Markdown table: seconds and images/s of each epoch, and the process's peak resident memory
(`ru_maxrss`). The disk cache goes to a temporary folder and is removed afterwards.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHILD = """
import collections, json, resource, sys, time
from pathlib import Path
from keras_sign.data.image_cache import cached_split
from keras_sign.data.pipeline import batches

folder, size, cache, cache_dir = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
paths = sorted(str(path) for path in folder.glob("*/*.jpg"))
Files = collections.namedtuple("Files", "paths labels orientations")
files = Files(paths, [int(Path(path).parent.name) for path in paths], [1] * len(paths))
images = cached_split(files, size, False, cache, cache_dir)
epochs = []
for epoch in range(2):
    start, count = time.perf_counter(), 0
    for x, _ in batches(images, 10, 32, shuffle_seed=epoch, augment_seed=epoch):
        count += int(x.shape[0])
    epochs.append({"seconds": time.perf_counter() - start, "images": count})
print(json.dumps({"epochs": epochs, "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def generate(folder, count, seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, 256, dtype=np.float32)
    for index in range(count):
        label = index % 10
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        a, b = rng.uniform(0, 255, (2, 3))
        field = a + (b - a) * ramp[:, None, None] * ramp[None, :, None]
        pixels = np.clip(field + rng.normal(0, 12, (256, 256, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / str(label) / f"{index:06d}.jpg", quality=85)


def measure(folder, size, cache):
    with tempfile.TemporaryDirectory() as cache_dir:
        result = subprocess.run([sys.executable, "-c", CHILD, str(folder), str(size), cache, cache_dir],
                                check=True, capture_output=True, text=True)
    return json.loads(result.stdout.splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--folder", help="where to generate the photos (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(args.folder or scratch) / "photos"
        if not folder.is_dir():
            generate(folder, args.images)
        decoded = args.images * args.image_size ** 2 * 3
        print(f"{args.images} photos, {args.image_size} px: {decoded / 1e9:.2f} GB decoded\n")
        print("| --image-cache | epoch 1 (decode): s, images/s | epoch 2 (cached): s, images/s | peak RSS |")
        print("| --- | ---: | ---: | ---: |")
        for cache in ("memory", "disk"):
            record = measure(folder, args.image_size, cache)
            cells = [f"{e['seconds']:.1f}, {e['images'] / e['seconds']:.0f}" for e in record["epochs"]]
            print(f"| {cache} | {cells[0]} | {cells[1]} | {record['peak_rss_bytes'] / 1e9:.2f} GB |", flush=True)


if __name__ == "__main__":
    main()
