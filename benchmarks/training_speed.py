"""Training-step throughput of keras-sign's models beside torchvision's, in one run, as ratios.

    python benchmarks/training_speed.py --archs mobilenetv3,resnet18,shufflenetv2 --sizes 64,96 \
        --batch-sizes 32 --keras tensorflow:float32,tensorflow:mixed_bfloat16,jax:float32 \
        --torch float32,channels_last,bf16_channels_last --threads 2 --out benchmarks/results/cpu

Every setting runs in a fresh process (a Keras backend is fixed per process, and thread
settings only apply before the first op). A setting trains each architecture with Adam and
categorical cross-entropy on one batch of seeded random pixels and one-hot labels (36 classes,
as the fingerspelling set) already on the device, so the figure is the model's training step
alone: `--warmup` steps (the first one compiles or traces, and is reported as `first_step_s`),
then the median of `--steps` timed steps, each one ending when its loss is back on the host.
keras-sign steps go through `train_on_batch` with what `keras-sign train` uses (its optimizer,
batch norm through the fused kernel, TensorFlow's default inter-op threads); torchvision steps
are the usual eager loop. With `--repeats N` the settings run N times round-robin and the
tables give each cell's best run (on a shared machine other jobs only ever slow a run down).

torchvision is measured when installed (`pip install torch==2.14.1 torchvision==0.29.1` here,
or in another environment named by `--torch-python`; on a GPU machine whatever it has). Writes OUT.json (every measurement) and OUT.md (a table with
each keras-sign setting's ratio to torchvision eager fp32 and to torchvision's best setting).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

NUM_CLASSES = 36
TORCHVISION_NAMES = {"mobilenetv3": "mobilenet_v3_small", "resnet18": "resnet18", "shufflenetv2": "shufflenet_v2_x1_0"}
TORCH_SETTINGS = ("float32", "channels_last", "bf16_channels_last")


def timed_steps(step, warmup, steps):
    """`(first step seconds, median step seconds)` of a function that runs one synchronised step."""
    started = time.perf_counter()
    step()
    first = time.perf_counter() - started
    for _ in range(warmup - 1):
        step()
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return first, statistics.median(times)


def random_batch(size, batch_size, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (batch_size, size, size, 3)).astype("float32")
    labels = np.eye(NUM_CLASSES, dtype="float32")[rng.integers(0, NUM_CLASSES, batch_size)]
    return images, labels


def keras_sign_model(arch, size, jit=False):
    """keras-sign's `arch` (seed 0, 36 classes), compiled for training as `keras-sign train` compiles it:
    its optimizer (Adam with a fused update under TensorFlow), batch norm through the fused kernel."""
    import keras

    from keras_sign.config import TrainConfig
    from keras_sign.models import build_model
    from keras_sign.training.fit import make_optimizer
    from keras_sign.training.fused_batch_norm import fuse_batch_norms

    keras.utils.set_random_seed(0)
    model = build_model(arch, num_classes=NUM_CLASSES, image_size=size)
    fuse_batch_norms(model)
    model.compile(optimizer=make_optimizer(TrainConfig(), 1e-3), loss="categorical_crossentropy", jit_compile=jit)
    return model


def keras_worker(backend, precision, args):
    """Measure keras-sign's models under one backend and dtype policy; yield one record per cell."""
    os.environ["KERAS_BACKEND"] = backend
    precision, jit = precision.removesuffix("+jit"), precision.endswith("+jit")
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)
    elif backend == "torch":
        import torch

        torch.set_num_threads(args.threads)
    import keras

    keras.config.set_dtype_policy(precision)
    device = keras.distribution.list_devices()[0] if backend == "jax" else None
    for arch in args.archs:
        for size in args.sizes:
            for batch_size in args.batch_sizes:
                model = keras_sign_model(arch, size, jit)
                images, labels = (keras.ops.convert_to_tensor(array) for array in random_batch(size, batch_size))
                first, median = timed_steps(lambda: model.train_on_batch(images, labels), args.warmup, args.steps)
                yield {
                    "framework": "keras-sign", "backend": backend, "setting": precision + ("+jit" if jit else ""),
                    "arch": arch, "size": size,
                    "batch_size": batch_size, "images_per_s": batch_size / median, "first_step_s": first,
                    "device": str(device or _keras_device(backend)),
                }
                keras.backend.clear_session()


def _keras_device(backend):
    if backend == "torch":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    import tensorflow as tf

    return "gpu" if tf.config.list_logical_devices("GPU") else "cpu"


def torch_worker(setting, args):
    """Measure torchvision's models in one setting (eager); yield one record per cell."""
    import torch
    import torchvision

    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    memory_format = torch.contiguous_format if setting == "float32" else torch.channels_last
    for arch in args.archs:
        for size in args.sizes:
            for batch_size in args.batch_sizes:
                torch.manual_seed(0)
                model = getattr(torchvision.models, TORCHVISION_NAMES[arch])(num_classes=NUM_CLASSES)
                model = model.to(device, memory_format=memory_format).train()
                optimizer = torch.optim.Adam(model.parameters(), 1e-3)
                loss_fn = torch.nn.CrossEntropyLoss()
                images, labels = random_batch(size, batch_size)
                images = torch.from_numpy(images).permute(0, 3, 1, 2).to(device, memory_format=memory_format) / 255.0
                targets = torch.from_numpy(labels.argmax(1)).to(device)

                def step():
                    optimizer.zero_grad(set_to_none=True)
                    with torch.autocast(device, dtype=torch.bfloat16, enabled=setting.startswith("bf16")):
                        loss = loss_fn(model(images), targets)
                    loss.backward()
                    optimizer.step()
                    loss.item()

                first, median = timed_steps(step, args.warmup, args.steps)
                yield {
                    "framework": "torchvision", "backend": f"torch {torch.__version__}", "setting": setting,
                    "arch": arch, "size": size, "batch_size": batch_size, "images_per_s": batch_size / median,
                    "first_step_s": first, "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
                }


def report(record):
    """Hand one record of a worker process back to `worker_records` in the parent."""
    print("RESULT " + json.dumps(record), flush=True)


def worker_records(python, script, worker, arguments, quiet=False):
    """Run `script --worker WORKER ARGUMENTS` in a fresh `python` process that imports keras-sign from this
    checkout; return `(the records it reported, its exit code)`. `quiet` drops its standard error."""
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    process = subprocess.run([python, script, "--worker", worker, *arguments], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL if quiet else None, text=True)
    records = [json.loads(line[7:]) for line in process.stdout.splitlines() if line.startswith("RESULT ")]
    return records, process.returncode


def run_worker(args):
    kind, _, setting = args.worker.partition(":")
    records = torch_worker(setting, args) if kind == "torchvision" else keras_worker(kind, setting, args)
    for record in records:
        report(record)
        print(f"{record['framework']:11} {record['backend']:10} {record['setting']:18} {record['arch']:13} "
              f"{record['size']:4} px  batch {record['batch_size']:4}: {record['images_per_s']:8.1f} images/s "
              f"(first step {record['first_step_s']:.1f} s)", file=sys.stderr, flush=True)


def torchvision_available(python):
    return subprocess.run([python, "-c", "import torchvision"], capture_output=True).returncode == 0


def measure(args):
    """Run every setting in its own process; return all records (a crashed setting is reported, not fatal)."""
    workers = list(args.keras)
    if args.torch and torchvision_available(args.torch_python):
        workers += [f"torchvision:{setting}" for setting in args.torch]
    elif args.torch:
        print("torchvision is not installed: no baseline (pip install torch==2.14.1 torchvision==0.29.1).", file=sys.stderr)
    records = []
    forwarded = ["--archs", ",".join(args.archs), "--sizes", ",".join(map(str, args.sizes)),
                 "--batch-sizes", ",".join(map(str, args.batch_sizes)), "--threads", str(args.threads),
                 "--inter-op-threads", str(args.inter_op_threads),
                 "--steps", str(args.steps), "--warmup", str(args.warmup)]
    for worker in [worker for _ in range(args.repeats) for worker in workers]:  # round-robin: noise hits all alike
        python = args.torch_python if worker.startswith("torchvision:") else sys.executable
        found, code = worker_records(python, __file__, worker, forwarded)
        if code:
            print(f"{worker} stopped with exit code {code} after {len(found)} cell(s).", file=sys.stderr)
        records += found
    return records


def markdown_table(records):
    """One row per (arch, size, batch): torchvision's settings, then each keras-sign setting with its ratios."""
    torch_settings = [s for s in TORCH_SETTINGS if any(r["setting"] == s and r["framework"] == "torchvision" for r in records)]
    keras_settings = list(dict.fromkeys(f"{r['backend']} {r['setting']}" for r in records if r["framework"] == "keras-sign"))
    header = ["arch", "size", "batch", *[f"torchvision {s}" for s in torch_settings], *[f"keras-sign {s}" for s in keras_settings]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    cells = sorted({(r["arch"], r["size"], r["batch_size"]) for r in records}, key=lambda c: (c[1], c[0], c[2]))
    for arch, size, batch in cells:
        mine = {}  # the best of the repeats: another job on a shared machine only ever slows a run down
        for r in records:
            if (r["arch"], r["size"], r["batch_size"]) == (arch, size, batch):
                key = (r["framework"], r["backend"] if r["framework"] == "keras-sign" else "", r["setting"])
                mine[key] = max(mine.get(key, 0), r["images_per_s"])
        baselines = [mine.get(("torchvision", "", s)) for s in torch_settings]
        eager, best = mine.get(("torchvision", "", "float32")), max(filter(None, baselines), default=None)
        row = [arch, str(size), str(batch), *[f"{v:.0f}" if v else "-" for v in baselines]]
        for setting in keras_settings:
            backend, _, precision = setting.partition(" ")
            value = mine.get(("keras-sign", backend, precision))
            if value is None:
                row.append("-")
            elif eager:
                row.append(f"{value:.0f} ({value / eager:.2f}x, {value / best:.2f}x best)")
            else:
                row.append(f"{value:.0f}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n\nimages/s, median training step; (ratio to torchvision eager fp32, ratio to torchvision's best setting)\n"


def machine():
    return {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
            "python": platform.python_version()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", default="mobilenetv3,resnet18,shufflenetv2", type=lambda s: s.split(","))
    parser.add_argument("--sizes", default="64,96", type=lambda s: [int(v) for v in s.split(",")])
    parser.add_argument("--batch-sizes", default="32", type=lambda s: [int(v) for v in s.split(",")])
    parser.add_argument("--keras", default="tensorflow:float32,tensorflow:mixed_bfloat16,jax:float32",
                        type=lambda s: s.split(","),
                        help="backend:dtype-policy settings of keras-sign; a +jit suffix compiles the step "
                             "(XLA under TensorFlow, torch.compile under PyTorch), e.g. torch:float32+jit")
    parser.add_argument("--torch", default=",".join(TORCH_SETTINGS), type=lambda s: [v for v in s.split(",") if v],
                        help=f"torchvision settings among {', '.join(TORCH_SETTINGS)}; empty for none")
    parser.add_argument("--torch-python", default=sys.executable,
                        help="the Python that has torchvision, when it is another environment")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--inter-op-threads", type=int, default=0,
                        help="TensorFlow's threads for independent ops; 0: TensorFlow's default, as `keras-sign train`")
    parser.add_argument("--repeats", type=int, default=1,
                        help="run every setting this many times, round-robin; the tables give each cell's best")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", help="write OUT.json and OUT.md")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return run_worker(args)
    records = measure(args)
    table = markdown_table(records)
    print(table)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(f"{args.out}.json").write_text(json.dumps({"machine": machine(), "args": vars(args), "records": records}, indent=1))
        Path(f"{args.out}.md").write_text(table)


if __name__ == "__main__":
    main()
