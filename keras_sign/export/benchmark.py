"""Latency and throughput of models side by side: Keras, TFLite (LiteRT), ONNX, SavedModel.

    keras-sign benchmark runs/digits-mobilenetv3_small-20261125-203937 exports/*/ --threads 2

For each model: its file size, the latency of one image (median and 90th percentile over `runs`
calls after `warmup` calls) and the throughput at batch 32 (after one warm-up batch). The inputs
are seeded random pixels of the model's input type: the time does not depend on the content.
LiteRT runs with XNNPACK; `threads` goes to LiteRT, onnxruntime and TensorFlow.
"""

import logging
import os
import time
from pathlib import Path

import numpy as np

from keras_sign.inference.runtimes import KerasModel, SavedModel, file_size, load_model_file, model_file, runtime_class
from keras_sign.tables import markdown_table

log = logging.getLogger("keras_sign")

RUNS = 100
WARMUP = 10
BATCH_SIZE = 32
BATCHES = 10


def limit_tensorflow_threads(threads):
    """Give TensorFlow's kernels `threads` threads, as LiteRT and onnxruntime get; possible only before
    TensorFlow runs its first op."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        log.warning("TensorFlow was already running; it keeps its default thread count.")


def display_name(path):
    """What the table calls a model: the file or folder name, with the folder for a generic `model.*`."""
    path = Path(path)
    return f"{path.parent.name}/{path.name}" if path.stem == "model" else path.name


def random_pixels(shape, dtype, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape).astype(dtype)


def benchmark_model(path, threads, runs=RUNS, warmup=WARMUP, batch_size=BATCH_SIZE, batches=BATCHES):
    """One row of the table for a model path (anything `runtimes.model_file` accepts)."""
    model = load_model_file(path, threads)
    one = random_pixels((1, *model.input_shape), model.input_dtype)
    for _ in range(warmup):
        model.predict(one)
    latencies = []
    for _ in range(runs):
        started = time.perf_counter()
        model.predict(one)
        latencies.append(time.perf_counter() - started)
    batch = random_pixels((batch_size, *model.input_shape), model.input_dtype, seed=1)
    model.predict(batch)
    started = time.perf_counter()
    for _ in range(batches):
        model.predict(batch)
    throughput = batches * batch_size / (time.perf_counter() - started)
    return {
        "model": display_name(path),
        "runtime": model.runtime,
        "input": f"{'x'.join(map(str, model.input_shape))} {model.input_dtype.name}",  # 64x64x3, or 63 landmarks
        "megabytes": file_size(model_file(path)) / 1e6,
        "latency_ms_median": 1000 * float(np.median(latencies)),
        "latency_ms_p90": 1000 * float(np.percentile(latencies, 90)),
        "images_per_second": throughput,
    }


def uses_tensorflow(paths):
    """Whether any of the models runs in TensorFlow: a SavedModel, or a Keras model on that backend."""
    runtimes = {runtime_class(model_file(path)) for path in paths}
    return SavedModel in runtimes or (KerasModel in runtimes and os.environ.get("KERAS_BACKEND") == "tensorflow")


def benchmark_models(paths, threads, runs=RUNS, warmup=WARMUP, batch_size=BATCH_SIZE, batches=BATCHES):
    """Rows for several models, measured one after the other in this process."""
    if uses_tensorflow(paths):
        limit_tensorflow_threads(threads)
    return [benchmark_model(path, threads, runs, warmup, batch_size, batches) for path in paths]


def benchmark_table(rows, threads, runs=RUNS, batch_size=BATCH_SIZE):
    """The rows as a Markdown table, with how they were measured."""
    header = ["model", "runtime", "input", "MB", "latency median (ms)", "p90 (ms)", f"images/s at batch {batch_size}"]
    cells = [[row["model"], row["runtime"], row["input"], f"{row['megabytes']:.2f}", f"{row['latency_ms_median']:.2f}",
              f"{row['latency_ms_p90']:.2f}", f"{row['images_per_second']:.0f}"] for row in rows]
    return (markdown_table(header, cells, "lllrrrr")
            + f"\nbatch 1 latency over {runs} runs after warm-up; {threads} thread(s)")
