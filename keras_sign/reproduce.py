"""Reproduce the study: train a set of configs one after the other, then compare the runs.

    keras-sign reproduce configs/paper/*.yaml --out runs/paper
    keras-sign reproduce configs/paper/fingerspelling-*.yaml --smoke    # seconds: checks the set-up

Each config trains into `OUT/<config file name>`. A finished run there is kept and an
interrupted one resumed, so after a crash the same command continues where it stopped.
"""

import logging
import time
from pathlib import Path

from keras_sign.errors import KerasSignError

log = logging.getLogger("keras_sign")


def reproduce(config_paths, out, backend, backend_reason, smoke=False):
    """Train every config into `out`, then compare all of them; return `(table, written paths)`."""
    import keras

    from keras_sign.compare import compare_runs
    from keras_sign.config import load_config
    from keras_sign.runs import RunFolder
    from keras_sign.training import train

    out = Path(out)
    stems = [Path(path).stem for path in config_paths]
    if len(set(stems)) != len(stems):
        raise KerasSignError("Two configs share a file name; each run folder is named after its config.")
    configs = [load_config(path, {"out": str(out / stem), "backend": backend, "smoke": smoke or None})
               for path, stem in zip(config_paths, stems)]  # every config checked before any training
    for path, config in zip(config_paths, configs):
        run = RunFolder(config.out)
        if run.file("run.json").is_file() and run.read_json("run.json")["status"] == "finished":
            log.info("%s: finished earlier, kept.", run.path)
            continue
        if run.path.exists() and any(run.path.iterdir()) and not run.file("run.json").is_file():
            raise KerasSignError(f"{run.path} holds an unfinished start without run.json; delete it and run again.")
        log.info("Training %s into %s", path, run.path)
        train(config, backend, backend_reason, resume=run.file("run.json").is_file())
        keras.backend.clear_session()  # the next architecture starts from a clean graph and memory
    return compare_runs([config.out for config in configs], out / f"compare-{time.strftime('%Y%m%d-%H%M%S')}")
