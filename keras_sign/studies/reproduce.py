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
    """Train every config into `out`, then compare all of them; return `(table, written paths)`.

    Sweep configs (a setting given as a list of values, as configs/paper/sweep-*.yaml) are left out,
    said in a log line: they are run by `keras-sign sweep --config`."""
    import keras

    from keras_sign.analysis.compare import compare_runs
    from keras_sign.config import load_config, read_yaml_mapping
    from keras_sign.runs.atomic import check_writable
    from keras_sign.runs.locks import FolderLock
    from keras_sign.training.fit import train_or_resume

    sweeps = [path for path in config_paths if any(isinstance(value, list) for value in
                                                   read_yaml_mapping(path, "Config file", "CONFIG", "keys to values").values())]
    for path in sweeps:
        log.info("%s is a sweep (lists of values): left out; run it with `keras-sign sweep --config %s`.", path, path)
    config_paths = [path for path in config_paths if path not in sweeps]
    if not config_paths:
        raise KerasSignError("Every config given is a sweep; run them with `keras-sign sweep --config FILE`.")
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
            log.info("Training %s into %s", path, config.out)
            train_or_resume(config, backend, backend_reason)  # a finished run is kept, an interrupted one resumed
            keras.backend.clear_session()  # the next architecture starts from a clean graph and memory
        return compare_runs([config.out for config in configs], out / f"compare-{time.strftime('%Y%m%d-%H%M%S')}")
