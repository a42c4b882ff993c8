"""Where a training step's time goes: the ops of one architecture's step, profiled, per framework.

    python benchmarks/step_profile.py --arch shufflenetv2 --size 64 --frameworks tensorflow,jax,torchvision \
        --torch-python /tmp/tvenv/bin/python --top 12

Each framework runs in a fresh process on one batch of seeded random pixels (batch 32, 36 classes,
Adam and cross-entropy, as `training_speed.py`), 2 threads unless `--threads`: warm-up steps, then
`--steps` profiled steps. The tables give each op kind's time per step and share of the op time:
- tensorflow: keras-sign through `train_on_batch`, TensorFlow's profiler, kernels grouped by op type
  (one op at a time, so that the kernels' times add up to the step's);
- jax: keras-sign through `train_on_batch`, JAX's profiler, XLA's compiled instructions (each named
  with the layer its HLO came from);
- torchvision: the eager loop under `torch.profiler`, ATen ops by self time.
"""

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from training_speed import NUM_CLASSES, TORCHVISION_NAMES, keras_sign_model, random_batch, report, worker_records  # noqa: E402


def profile_tensorflow(args, folder):
    """`{op type: picoseconds}` over the profiled steps, from the XPlane TensorFlow's profiler writes."""
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    model = keras_sign_model(args.arch, args.size)
    images, labels = random_batch(args.size, 32)
    for _ in range(args.warmup):
        model.train_on_batch(images, labels)
    tf.profiler.experimental.start(folder)
    for _ in range(args.steps):
        model.train_on_batch(images, labels)
    tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    space.ParseFromString(Path(glob.glob(f"{folder}/**/*.xplane.pb", recursive=True)[0]).read_bytes())
    times = collections.Counter()
    for plane in space.planes:
        names = {key: value.name for key, value in plane.event_metadata.items()}
        for line in plane.lines:
            if line.name.startswith("tf_Compute"):  # the executor's kernels, named "node:OpType"
                for event in line.events:
                    name = names.get(event.metadata_id, "")
                    if ":" in name.replace("::", ""):  # not the executor's own events (ExecutorState::Process)
                        times[name.rsplit(":", 1)[1]] += event.duration_ps
    return times


def profile_jax(args, folder):
    """`{instruction (layer): picoseconds}`: XLA:CPU's thunks from JAX's trace, named by the HLO dump."""
    import jax

    model = keras_sign_model(args.arch, args.size)
    images, labels = random_batch(args.size, 32)
    for _ in range(args.warmup):
        model.train_on_batch(images, labels)
    jax.profiler.start_trace(folder)
    for _ in range(args.steps):
        model.train_on_batch(images, labels)
    jax.profiler.stop_trace()
    layers = {}
    for dump in glob.glob(f"{folder}/hlo/*train_step*after_optimizations.txt"):
        for name, op_name in re.findall(r"%([\w.-]+) = .*?op_name=\"([^\"]+)\"", Path(dump).read_text()):
            layers[name] = re.sub(r"^jit\(train_step\)/", "", op_name)
    trace = json.load(gzip.open(glob.glob(f"{folder}/**/*.trace.json.gz", recursive=True)[0]))
    times = collections.Counter()
    for event in trace["traceEvents"]:
        name = event.get("name", "")
        if event.get("ph") == "X" and name in layers:
            times[f"{name} ({layers[name]})"] += event["dur"] * 1_000_000
    return times


def profile_torchvision(args, folder):
    """`{ATen op: picoseconds}` of self CPU time, from `torch.profiler`."""
    import torch
    import torchvision

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = getattr(torchvision.models, TORCHVISION_NAMES[args.arch])(num_classes=NUM_CLASSES).train()
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    images, labels = random_batch(args.size, 32)
    images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous() / 255.0
    targets = torch.from_numpy(labels.argmax(1))

    def step():
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(images), targets).backward()
        optimizer.step()

    for _ in range(args.warmup):
        step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        for _ in range(args.steps):
            step()
    return collections.Counter({row.key: row.self_cpu_time_total * 1_000_000 for row in profiler.key_averages()})


def worker(args):
    with tempfile.TemporaryDirectory() as folder:
        if args.worker == "jax":  # XLA names its instructions; the dump says which layer each came from
            os.environ["XLA_FLAGS"] = f"--xla_dump_to={folder}/hlo --xla_dump_hlo_as_text"
        if args.worker in ("tensorflow", "jax"):
            os.environ["KERAS_BACKEND"] = args.worker
        profile = {"tensorflow": profile_tensorflow, "jax": profile_jax, "torchvision": profile_torchvision}
        times = profile[args.worker](args, folder)
    report({name: ps / 1e9 / args.steps for name, ps in times.items()})  # ms per step


def table(framework, ms_per_step, top):
    total = sum(ms_per_step.values())
    lines = [f"### {framework}: {total:.1f} ms of ops per step", "", "| op | ms per step | share |", "| --- | ---: | ---: |"]
    for name, ms in sorted(ms_per_step.items(), key=lambda item: -item[1])[:top]:
        lines.append(f"| {name} | {ms:.2f} | {100 * ms / total:.1f}% |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="shufflenetv2", choices=sorted(TORCHVISION_NAMES))
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--frameworks", default="tensorflow,torchvision", type=lambda s: s.split(","))
    parser.add_argument("--torch-python", default=sys.executable, help="a Python with torch and torchvision")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    forwarded = ["--arch", args.arch, "--size", str(args.size), "--threads", str(args.threads),
                 "--warmup", str(args.warmup), "--steps", str(args.steps)]
    print(f"## {args.arch}, {args.size} px, batch 32, {args.threads} threads, {args.steps} profiled steps\n")
    for framework in args.frameworks:
        python = args.torch_python if framework == "torchvision" else sys.executable
        found, code = worker_records(python, __file__, framework, forwarded, quiet=True)
        if not found:
            print(f"{framework}: no profile (exit code {code}).\n")
            continue
        print(table(framework, found[0], args.top) + "\n")


if __name__ == "__main__":
    main()
