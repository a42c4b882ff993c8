"""What a realistic hostile user meets: phone photos, odd image files and names, damaged files,
unwritable places and two processes at once. Each case names the defect it guards against."""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageOps

from conftest import REPO, SAMPLE, copy_subset
from keras_sign.analysis.evaluate import evaluate_run
from keras_sign.cli import cli
from keras_sign.config import load_config
from keras_sign.data.decode import decode_and_resize
from keras_sign.data.pipeline import make_dataset
from keras_sign.data.scan import read_orientation, scan_folder
from keras_sign.data.validate import validate_report
from keras_sign.errors import KerasSignError
from keras_sign.models.saving import load_model
from keras_sign.runs.folder import RunFolder, create_empty_folder
from keras_sign.runs.locks import FolderLock
from keras_sign.training.fit import train

# Its tests share module-scoped trained runs: one worker runs them all (pytest-xdist --dist loadgroup).
pytestmark = pytest.mark.xdist_group("reliability")

CLASSES = ["0", "1", "2"]
# The transpose that stores an upright picture the way a camera does for each EXIF orientation:
# the inverse of what PIL.ImageOps.exif_transpose applies when reading it.
STORED_AS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}
LATIN1_NAME = os.fsdecode(b"se\xf1a.png")  # "seña" from a Windows zip: not valid UTF-8


def save_as_phone_would(upright, path, orientation, **options):
    """Write `upright` with its pixels turned and the EXIF tag that turns them back, as phones do."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    upright.transpose(STORED_AS[orientation]).save(path, exif=exif.tobytes(), **options)


def first_photo(label="0"):
    return Image.open(sorted((SAMPLE / label).iterdir())[0]).convert("RGB")


def _invoke(*args):
    """The real command line, in this process (CliRunner): `(exit code, output)`."""
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.output


def _one_line_error(code, output, *fragments):
    assert code == 1, output
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in output, output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


# === A user's folder: phone photos, a Windows file name, a broken link ===


@pytest.fixture(scope="module")
def users_folder(tmp_path_factory):
    """3 digit classes of real photos, with what users' folders really hold mixed in."""
    root = copy_subset(SAMPLE, tmp_path_factory.mktemp("users") / "digits", CLASSES, 10)
    save_as_phone_would(first_photo("1"), root / "1" / "portrait.jpg", 6, quality=95)
    shutil.copy(sorted((SAMPLE / "2").iterdir())[-1], root / "2" / LATIN1_NAME)
    os.symlink(root / "gone.jpg", root / "0" / "link.jpg")
    return root


@pytest.fixture(scope="module")
def users_run(users_folder, tmp_path_factory):
    """MobileNetV3-Small trained 2 epochs on `users_folder`, evaluated on its test split."""
    config = load_config(overrides=dict(data_dir=str(users_folder), epochs=2, image_size=32, batch_size=8, seed=3,
                                        val_fraction=0.2, test_fraction=0.3,
                                        out=str(tmp_path_factory.mktemp("runs") / "run")))
    run, _ = train(config, "tensorflow", "test")
    return run.path


def test_exif_orientation_is_applied_for_every_tag_as_pil_does(tmp_path):
    """Defect 1: tf.io.decode_image ignores the tag, so phone photos were trained on sideways."""
    upright = first_photo().resize((40, 56))  # not square: a wrong axis shows
    upright.save(tmp_path / "upright.png")
    reference = decode_and_resize(str(tmp_path / "upright.png"), 1, 48).numpy()
    for orientation in STORED_AS:
        path = tmp_path / f"stored-{orientation}.png"
        save_as_phone_would(upright, path, orientation)
        assert np.array_equal(np.asarray(ImageOps.exif_transpose(Image.open(path))), np.asarray(upright))
        assert read_orientation(path) == orientation
        decoded = decode_and_resize(str(path), orientation, 48).numpy()
        np.testing.assert_array_equal(decoded, reference, err_msg=f"orientation {orientation}")


def test_scan_reads_the_tag_and_reports_upright_sizes_and_rotations(users_folder):
    table = scan_folder(users_folder)
    portrait = next(r for r in table.records if r.path == "1/portrait.jpg")
    assert portrait.orientation == 6 and (portrait.width, portrait.height) == (100, 100)
    _, report = validate_report(users_folder)
    assert "stored rotated or mirrored (EXIF orientation, turned upright when read): 1 (orientation 6: 1)" in report


def test_phone_photos_are_evaluated_upright(users_run, tmp_path):
    """The same photos, saved upright and saved as a phone saves them, get the same predictions."""
    upright, phone = tmp_path / "upright", tmp_path / "phone"
    for label in CLASSES:
        (upright / label).mkdir(parents=True)
        (phone / label).mkdir(parents=True)
        for index, source in enumerate(sorted((SAMPLE / label).iterdir())[-4:]):
            picture = Image.open(source).convert("RGB")
            picture.save(upright / label / f"{index}.png")
            save_as_phone_would(picture, phone / label / f"{index}.png", 6 if index % 2 else 8)
    straight = evaluate_run(users_run, upright)[0]
    turned = evaluate_run(users_run, phone)[0]
    assert turned["per_class"] == straight["per_class"] and turned["accuracy"] == straight["accuracy"]


def test_split_csv_carries_orientations_and_odd_names_into_training(users_run, users_folder):
    """Defects 1 and 9: the orientation reaches every later command through split.csv, and a Latin-1
    file name survives split.csv (it crashed the write before)."""
    run = RunFolder(users_run)
    rows = {row["path"]: row for row in run.read_split()}
    assert rows["1/portrait.jpg"]["orientation"] == "6"
    assert f"2/{LATIN1_NAME}" in rows
    assert b"se\xf1a.png" in run.file("split.csv").read_bytes()  # the name's own bytes, not a mangled copy
    files = {split: run.split_files(split) for split in ("train", "val", "test")}
    everything = [path for split in files.values() for path in split.paths]
    assert users_folder / "2" / LATIN1_NAME in everything
    assert all(path.is_file() for path in everything)
    info = run.read_json("run.json")
    assert info["status"] == "finished" and info["rotated_files"] == 1
    assert ["0/link.jpg", "broken symbolic link: its target does not exist"] in info["skipped_files"]


def test_validate_prints_odd_names_and_broken_links(users_folder, tmp_path):
    """Defects 9 and 14 through the real command line, in a fresh process."""
    folder = tmp_path / "users"
    shutil.copytree(users_folder, folder, symlinks=True)
    (folder / "0" / os.fsdecode(b"da\xf1ado.jpg")).write_bytes(b"\xff\xd8 cut short")
    result = subprocess.run([sys.executable, "-m", "keras_sign.cli", "data", "validate", str(folder)],
                            capture_output=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    assert b"3 classes, 32 images" in result.stdout  # se\xf1a.png among them
    assert b"0/da\xf1ado.jpg: not an image" in result.stdout
    assert b"0/link.jpg: broken symbolic link" in result.stdout


# === Image files the pipeline would get wrong ===


def _bmp_variants(tmp_path):
    photo = first_photo().resize((36, 28))
    variants = {mode: photo.convert(mode) for mode in ("1", "L", "P", "RGB", "RGBA")}
    variants["P-adaptive"] = photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    folder = tmp_path / "bmps" / "a"
    folder.mkdir(parents=True)
    for name, image in variants.items():
        image.save(folder / f"{name}.bmp")
    copy_subset(SAMPLE, tmp_path / "bmps", ["1"], 2)
    return tmp_path / "bmps"


def test_scanner_keeps_exactly_the_bmps_tensorflow_decodes_correctly(tmp_path):
    """Defect 2: palette BMPs decoded as grey indices, 1-bit BMPs crashed training mid-epoch."""
    import tensorflow as tf

    root = _bmp_variants(tmp_path)
    table = scan_folder(root)
    kept = {r.path for r in table.records}
    skipped = dict(table.skipped)
    for path in sorted((root / "a").iterdir()):
        relative = f"a/{path.name}"
        truth = np.asarray(Image.open(path).convert("RGB")).astype(int)
        try:
            decoded = tf.io.decode_image(path.read_bytes(), channels=3, expand_animations=False).numpy().astype(int)
            correct = decoded.shape == truth.shape and np.abs(decoded - truth).max() <= 1
        except tf.errors.InvalidArgumentError:
            correct = False
        assert (relative in kept) == correct, (relative, skipped.get(relative))
        if not correct:
            assert "BMP is not decoded correctly by TensorFlow; convert it to PNG" in skipped[relative]
    assert {"a/P.bmp", "a/1.bmp"} <= set(skipped) and {"a/RGB.bmp", "a/L.bmp"} <= kept


def test_multi_picture_jpegs_from_cameras_are_kept_and_decode(tmp_path):
    """Defect 3: Pillow's MPO was skipped as unsupported, though TensorFlow reads its first picture."""
    root = copy_subset(SAMPLE, tmp_path / "d", ["1"], 2)
    (root / "0").mkdir()
    photo = first_photo()
    photo.save(root / "0" / "camera.jpg", "MPO", save_all=True, append_images=[photo.rotate(90)])
    assert Image.open(root / "0" / "camera.jpg").format == "MPO"
    table = scan_folder(root)
    assert "0/camera.jpg" in {r.path for r in table.records} and not table.skipped
    image = next(make_dataset([root / "0" / "camera.jpg"], [0], 2, 100, 1).as_numpy_iterator())[0][0]
    assert np.abs(image - np.asarray(photo, np.float32)).mean() < 3


# === Evaluation outputs ===


def test_evaluating_a_subset_of_classes_averages_over_the_classes_present(users_run, tmp_path):
    """Defect 4: absent classes counted as zeros (macro F1 0.29 beside accuracy 0.96)."""
    subset = copy_subset(SAMPLE, tmp_path / "two", ["0", "1"], 5)
    metrics = evaluate_run(users_run, subset)[0]
    assert set(metrics["per_class"]) == {"0", "1"} and metrics["classes_evaluated"] == 2
    recalls = [metrics["per_class"][name]["recall"] for name in ("0", "1")]
    assert metrics["macro"]["recall"] == pytest.approx(np.mean(recalls))
    assert metrics["accuracy"] == pytest.approx(np.mean(recalls))  # 5 images each
    rows = (RunFolder(users_run).file("report-two.csv")).read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["0", "1", "macro avg", "weighted avg"]
    assert "averages over the 2 of the model's 3 classes" in RunFolder(users_run).file("report-two.txt").read_text()


def test_a_single_class_folder_can_be_evaluated(users_run, tmp_path):
    """Defect 13: 'a classifier needs at least two class folders' is a rule for training only."""
    single = copy_subset(SAMPLE, tmp_path / "only-ones", ["1"], 4)
    metrics = evaluate_run(users_run, single)[0]
    assert metrics["images"] == 4 and list(metrics["per_class"]) == ["1"]


def test_two_folders_with_one_name_do_not_overwrite_each_others_reports(users_run, tmp_path):
    """Defect 7: evalA/test then evalB/test silently replaced the first one's metrics-test.json."""
    first = copy_subset(SAMPLE, tmp_path / "evalA" / "test", CLASSES, 2)
    second = copy_subset(SAMPLE, tmp_path / "evalB" / "test", ["0"], 3)
    evaluate_run(users_run, first)
    kept = RunFolder(users_run).file("metrics-test.json").read_bytes()
    with pytest.raises(KerasSignError, match=r"metrics-test.json already holds the evaluation of .*evalA/test; pass "
                                             r"--name to keep both \(e.g. --name evalB-test\)"):
        evaluate_run(users_run, second)
    assert RunFolder(users_run).file("metrics-test.json").read_bytes() == kept
    evaluate_run(users_run, first)  # the same folder again simply refreshes its files
    metrics = evaluate_run(users_run, second, name="evalB-test")[0]
    assert metrics["images"] == 3 and RunFolder(users_run).file("report-evalB-test.txt").is_file()
    assert json.loads(kept)["images"] == 6


# === Damaged files ===


def test_damaged_model_file_is_named_in_one_line_by_every_command(users_run, tmp_path):
    """Defect 8: a truncated model.keras gave `ValueError: File not found` with a traceback."""
    damaged = tmp_path / "damaged"
    shutil.copytree(users_run, damaged)
    model = damaged / "model.keras"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    for args in (["evaluate", damaged], ["export", damaged, "--out", tmp_path / "exports"], ["benchmark", damaged]):
        _one_line_error(*_invoke(*args), "model.keras is damaged or cut short")
    flipped = bytearray((users_run / "model.keras").read_bytes())
    flipped[len(flipped) // 2] ^= 0xFF  # one bad byte inside the zip: its checksum catches it
    model.write_bytes(bytes(flipped))
    with pytest.raises(KerasSignError, match="fails its checksum"):
        load_model(damaged)


def test_resume_falls_back_from_a_damaged_checkpoint(users_run, tmp_path, caplog):
    """Defect 8, on resume: the newest intact checkpoint (best.npz) is used and said so, and training
    goes on from there."""
    run = tmp_path / "resumed"
    shutil.copytree(users_run, run)
    state = json.loads((run / "checkpoint" / "state.json").read_text())
    (run / state["model"]).write_bytes(b"")  # a copy cut off, a full disk...
    config = load_config(run / "config.yaml", {"epochs": 3, "out": str(run)})
    train(config, "tensorflow", "test", resume=True)
    assert "Resuming from checkpoint/best.npz instead (epoch %d)" % state["best_epoch"] in caplog.text
    info = json.loads((run / "run.json").read_text())
    assert info["epochs_trained"] == 3
    assert [row["epoch"] for row in RunFolder(run).read_history()] == ["1", "2", "3"]


def test_with_no_intact_checkpoint_training_starts_over(users_run, tmp_path, caplog):
    from keras_sign.training.checkpoints import load_resumable, read_state

    run = tmp_path / "damaged"
    shutil.copytree(users_run, run)
    folder = RunFolder(run)
    for name in (read_state(folder)["model"], "checkpoint/best.npz"):
        (run / name).write_bytes(b"PK\x03\x04 not a whole file")
    values, state = load_resumable(folder, read_state(folder))
    assert values is None and state["epoch"] == 0 and state["model"] is None
    assert "No intact checkpoint" in caplog.text and "training starts again from the first epoch" in caplog.text


# === Two writers ===


def test_a_run_folder_is_created_by_exactly_one_of_two_racing_processes(tmp_path):
    """Defect 5: 'exists and empty' then mkdir(exist_ok=True) let both racers have the folder."""
    for trial in range(40):
        target, winners, barrier, stacks = tmp_path / f"race{trial}", [], threading.Barrier(2), []

        def race():
            stack = contextlib.ExitStack()
            stacks.append(stack)
            barrier.wait()
            with contextlib.suppress(KerasSignError):
                create_empty_folder(target, "Run folder", stack)
                (target / "config.yaml").write_text("mine")
                winners.append(threading.get_ident())

        threads = [threading.Thread(target=race) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for stack in stacks:
            stack.close()
        assert len(winners) == 1, trial


def test_a_second_writer_is_refused_with_the_holders_pid_and_a_killed_holder_leaves_no_lock(users_folder,
                                                                                          tmp_path):
    """Defect 5: `train --resume RUN` while RUN trained deleted the other's checkpoint and both wrote."""
    run = tmp_path / "busy"
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    process = subprocess.Popen(
        [sys.executable, "-m", "keras_sign.cli", "train", "--data-dir", users_folder, "--out", run, "--epochs", "200",
         "--image-size", "32", "--batch-size", "8"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 300
        while not (run / "run.json").is_file():  # written under the folder's lock, before the first epoch
            assert process.poll() is None and time.time() < deadline, "training ended before the test could meet it"
            time.sleep(0.1)
        before = {p.name: p.stat().st_mtime_ns for p in run.iterdir() if p.is_file()}
        code, output = _invoke("train", "--resume", run)
        _one_line_error(code, output, f"is being written by another process (PID {process.pid} on ", "wait for it")
        assert process.poll() is None  # the first writer carries on, its files untouched by the refused one
        assert {n: t for n, t in before.items() if n != "history.csv"} == \
            {p.name: p.stat().st_mtime_ns for p in run.iterdir() if p.name in before and p.name != "history.csv"}
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    with FolderLock(run):  # the operating system released the killed process's lock
        pass


def test_a_second_reproduce_into_one_folder_is_refused(tmp_path):
    from keras_sign.studies.reproduce import reproduce

    config = tmp_path / "digits.yaml"
    config.write_text("epochs: 1\n")
    (tmp_path / "out").mkdir()
    with FolderLock(tmp_path / "out", "Reproduce folder"):
        with pytest.raises(KerasSignError, match="Reproduce folder .*out is being written by another process"):
            reproduce([config], tmp_path / "out", "tensorflow", "test")


def test_a_refused_resume_leaves_the_config_as_it_was(users_run):
    """Defect 6: `--resume RUN --epochs 1` on a finished 2-epoch run rewrote config.yaml first."""
    before = (users_run / "config.yaml").read_bytes()
    config = load_config(users_run / "config.yaml", {"epochs": 1, "out": str(users_run)})
    with pytest.raises(KerasSignError, match="already trained 2 epoch"):
        train(config, "tensorflow", "test", resume=True)
    assert (users_run / "config.yaml").read_bytes() == before


# === Places that cannot be written, files that are not what they claim ===


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder nobody may write in: permissions for a normal user; a read-only mount for root."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"running as root without a way to make a read-only folder ({mounted.stderr.decode().strip()})")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_an_unwritable_out_is_refused_before_the_data_scan(read_only_folder, caplog):
    """Defect 10: a raw PermissionError after the whole scan."""
    code, output = _invoke("train", "--out", read_only_folder / "run", "--epochs", "1")
    _one_line_error(code, output, f"Cannot write in {read_only_folder}", "choose another --out")
    assert "10 classes" not in caplog.text  # refused before the scan


def test_runs_being_a_file_is_one_clear_line(tmp_path, monkeypatch, users_run):
    """Defect 12: NotADirectoryError when `runs` (the default output's parent) is a file."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").write_text("not a folder")
    _one_line_error(*_invoke("compare", users_run), "Cannot create the folder runs/compare-", "runs, which is a file")
    _one_line_error(*_invoke("train", "--epochs", "1"), "which is a file", "choose another --out")


@pytest.mark.parametrize("encoding, prefix", [("utf-8", b"\xef\xbb\xbf"), ("utf-16-le", b"\xff\xfe"),
                                              ("utf-16-be", b"\xfe\xff")])
def test_config_files_from_windows_editors_load(tmp_path, encoding, prefix):
    """Defect 11: a UTF-16 config (Windows PowerShell's `>`) raised UnicodeDecodeError."""
    path = tmp_path / "c.yaml"
    path.write_bytes(prefix + "epochs: 7\narch: resnet18  # ResNet-18 für Buchstaben\n".encode(encoding))
    config = load_config(path)
    assert (config.epochs, config.arch) == (7, "resnet18")


def test_a_binary_config_is_one_clear_line(tmp_path):
    path = tmp_path / "model.yaml"
    path.write_bytes(np.random.default_rng(0).bytes(300))
    _one_line_error(*_invoke("train", "--config", path), "is not a text file in UTF-8", "save it as UTF-8")
    path.write_bytes(b"epochs: 3\x00\x00\n")
    with pytest.raises(KerasSignError, match="not a text file"):
        load_config(path)


def test_a_full_disk_is_one_line_and_resumable(users_folder, tmp_path):
    """No space left while checkpointing: one line, nothing half-written, and the run resumes."""
    disk = tmp_path / "small-disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(disk)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root and tmpfs to simulate a full disk")
    try:
        run = disk / "run"
        code, output = _invoke("train", "--data-dir", users_folder, "--out", run, "--epochs", "1", "--image-size", "32")
        _one_line_error(code, output, "No space left on device", "--resume")
        assert not [p for p in run.rglob("*") if ".tmp" in p.name]  # no temporary file left behind
        assert json.loads((run / "run.json").read_text())["status"] == "training"
    finally:
        subprocess.run(["umount", str(disk)], check=True)
