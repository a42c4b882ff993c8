"""`keras-sign reproduce` (`keras_sign.studies.reproduce`): the study's configs, each trained, then compared;
finished runs kept, interrupted ones resumed, one reproduce per folder."""

import time

import pytest

from conftest import REPO, run_cli
from conftest import assert_ok as _ok
from conftest import history_rows as _history
from keras_sign.errors import KerasSignError
from keras_sign.runs.folder import RunFolder
from keras_sign.runs.locks import FolderLock


def test_paper_configs_are_the_study_setting():
    from keras_sign.config import load_config

    configs = sorted(path for path in (REPO / "configs" / "paper").glob("*.yaml") if not path.name.startswith("sweep-"))
    assert len(configs) == 9
    loaded = [load_config(path) for path in configs]
    assert {(c.arch, c.dataset) for c in loaded} == {
        (arch, dataset) for arch in ("resnet18", "mobilenetv3_small", "shufflenetv2_x1_0")
        for dataset in ("alphabet", "numbers", "fingerspelling")
    }
    assert {(c.batch_size, c.lr, c.epochs, c.optimizer, c.image_size, c.center_crop, c.augment) for c in loaded} == {
        (64, 1e-3, 10, "adam", 224, True, False)
    }


@pytest.mark.slow  # moved from the fast tier, which stays under 5 minutes on 2 cores
def test_reproduce_trains_each_config_then_compares_and_keeps_finished_runs(small_digits, tmp_path):
    configs = []
    # ResNet-18 twice: of the three architectures it traces its first step fastest
    for name, lr in (("a", 1e-3), ("b", 2e-3)):
        path = tmp_path / f"digits-{name}.yaml"
        path.write_text(f"arch: resnet18\ndata_dir: {small_digits}\nepochs: 5\nlr: {lr}\n")
        configs.append(path)
    sweep = tmp_path / "sweep-digits.yaml"
    sweep.write_text(f"data_dir: {small_digits}\nlr: [1.0e-2, 1.0e-3]\n")
    out = tmp_path / "out"
    result = run_cli("reproduce", *configs, sweep, "--out", out, "--smoke", "--backend", "tensorflow")
    _ok(result)
    assert "is a sweep (lists of values): left out" in result.stderr and not (out / "sweep-digits").exists()
    for name in ("a", "b"):
        run = out / f"digits-{name}"
        assert "smoke: true" in (run / "config.yaml").read_text()
        assert len(_history(run)) == 1  # --smoke: one epoch
        for name in ("confusion_matrix.png", "tsne.png", "curves.png", "report.csv"):
            assert (run / name).is_file(), name
    compares = list(out.glob("compare-*"))
    assert len(compares) == 1 and (compares[0] / "compare.md").read_text().count("| digits-") == 2
    stamp = (out / "digits-b" / "model.keras").stat().st_mtime_ns

    # Again, after one run was killed while it evaluated (its last epoch checkpointed, no model.keras yet): the
    # finished run is kept, the other resumed and finished without training again, and both are compared anew.
    interrupted = RunFolder(out / "digits-a")
    history = interrupted.file("history.csv").read_bytes()
    interrupted.file("model.keras").unlink()
    interrupted.write_json("run.json", {**interrupted.read_json("run.json"), "status": "training"})
    time.sleep(1)  # the next comparison folder gets another time stamp
    result = run_cli("reproduce", *configs, "--out", out, "--smoke", "--backend", "tensorflow")
    _ok(result)
    assert f"{out / 'digits-b'} is finished: kept" in result.stderr
    assert (out / "digits-b" / "model.keras").stat().st_mtime_ns == stamp
    assert f"{out / 'digits-a'} was interrupted: resuming it" in result.stderr
    assert interrupted.read_json("run.json")["status"] == "finished" and interrupted.file("model.keras").is_file()
    assert interrupted.file("history.csv").read_bytes() == history  # not one more epoch
    assert len(list(out.glob("compare-*"))) == 2


def test_a_second_reproduce_into_one_folder_is_refused(tmp_path):
    from keras_sign.studies.reproduce import reproduce

    config = tmp_path / "digits.yaml"
    config.write_text("epochs: 1\n")
    (tmp_path / "out").mkdir()
    with FolderLock(tmp_path / "out", "Reproduce folder"):
        with pytest.raises(KerasSignError, match="Reproduce folder .*out is being written by another process"):
            reproduce([config], tmp_path / "out", "tensorflow", "test")
