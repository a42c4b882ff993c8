"""Reproduce the study: train a set of configs one after the other, then compare the runs.

    keras-sign reproduce configs/paper/*.yaml --out runs/paper
    keras-sign reproduce configs/paper/fingerspelling-*.yaml --smoke    # seconds: checks the set-up

Each config trains into `OUT/<config file name>`. A finished run there is kept and an
interrupted one resumed, so after a crash the same command continues where it stopped.
One `reproduce` at a time writes OUT: it holds OUT's lock until it ends.
"""

import logging
import time
from pathlib import Path

from keras_sign.errors import KerasSignError

log = logging.getLogger("keras_sign")


def reproduce(config_paths, out, backend, backend_reason, smoke=False):
    """Train every config into `out`, then compare all of them; return `(table, written paths)`."""
    from keras_sign.compare import compare_runs
    from keras_sign.config import load_config
    from keras_sign.runs import FolderLock, check_writable

    out = Path(out)
    stems = [Path(path).stem for path in config_paths]
    if len(set(stems)) != len(stems):
        raise KerasSignError("Two configs share a file name; each run folder is named after its config.")
    configs = [load_config(path, {"out": str(out / stem), "backend": backend, "smoke": smoke or None})
               for path, stem in zip(config_paths, stems)]  # every config checked before any training
    check_writable(out)
    out.mkdir(parents=True, exist_ok=True)
    with FolderLock(out, "Reproduce folder"):  # a second `reproduce` into the same folder is refused
        for path, config in zip(config_paths, configs):
            _train_or_keep(path, config, backend, backend_reason)
        return compare_runs([config.out for config in configs], out / f"compare-{time.strftime('%Y%m%d-%H%M%S')}")


def _train_or_keep(config_path, config, backend, backend_reason):
    """Train one config into its run folder: keep a finished run, resume an interrupted one."""
    import keras

    from keras_sign.runs import RunFolder, holds_files
    from keras_sign.training import train

    run = RunFolder(config.out)
    started = run.file("run.json").is_file()
    if started and run.read_json("run.json")["status"] == "finished":
        log.info("%s: finished earlier, kept.", run.path)
        return
    if run.path.is_dir() and holds_files(run.path) and not started:
        raise KerasSignError(f"{run.path} holds an unfinished start without run.json; delete it and run again.")
    log.info("Training %s into %s", config_path, run.path)
    train(config, backend, backend_reason, resume=started)
    keras.backend.clear_session()  # the next architecture starts from a clean graph and memory
