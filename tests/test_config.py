"""`keras_sign.config`: defaults, files and flags, every bad value named in one sentence, and config files as
Windows editors save them."""

import numpy as np
import pytest

from conftest import invoke as _invoke
from conftest import one_line_error as _one_line_error
from keras_sign.config import TrainConfig, config_to_yaml, load_config
from keras_sign.errors import KerasSignError


def test_defaults_are_valid_and_round_trip_through_yaml(tmp_path):
    config = load_config()
    assert config == TrainConfig()
    path = tmp_path / "resolved.yaml"
    path.write_text(config_to_yaml(config))
    assert load_config(path) == config


def test_flags_override_the_file_which_overrides_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 7\nlr: 0.01\narch: mobilenetv3\n")
    config = load_config(path, {"epochs": 3, "lr": None})
    assert (config.epochs, config.lr, config.arch, config.batch_size) == (3, 0.01, "mobilenetv3", 32)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"image_size": 16}, "image_size must be at least 32"),
        ({"lr": -1}, "lr must be a positive number"),
        ({"epochs": "many"}, "'epochs' must be a whole number"),
        ({"epochs": 2.5}, "'epochs' must be a whole number"),
        ({"augment": "yes"}, "'augment' must be true or false"),
        ({"split": "random"}, "split must be one of"),
        ({"learning_rate": 1}, "Unknown config key(s) learning_rate"),
    ],
)
def test_bad_values_are_named_in_one_sentence(overrides, message):
    with pytest.raises(KerasSignError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(overrides=overrides)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(KerasSignError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1,\n")
    with pytest.raises(KerasSignError, match="not valid YAML"):
        load_config(bad)


@pytest.mark.parametrize("overrides, message", [
    ({"smoke": True, "image_size": 31}, "image_size must be at least 32 (got 31)"),
    ({"smoke": True, "batch_size": 0}, "batch_size must be a positive integer (got 0)"),
    ({"lr": float("nan")}, "'lr' must be a finite number"),
    ({"mix_alpha": "inf"}, "'mix_alpha' must be a finite number"),
])
def test_values_given_are_checked_before_smoke_shrinks_them(overrides, message):
    """`train --smoke --image-size 31` trained at 32 px, `--batch-size 0` at 8, without a word."""
    with pytest.raises(KerasSignError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(overrides=overrides)


def test_smoke_says_what_it_changes(caplog):
    with caplog.at_level("INFO", logger="keras_sign"):
        config = load_config(overrides={"smoke": True, "image_size": 48, "epochs": 5})
    assert (config.image_size, config.epochs, config.batch_size, config.limit_per_class) == (32, 1, 8, 10)
    assert "--smoke: image_size 48 -> 32" in caplog.text and "epochs 5 -> 1" in caplog.text


@pytest.mark.parametrize("overrides, message", [
    ({"fold": "7/5"}, "fold must be 'i/k'"),
    ({"fold": "1/1"}, "fold must be 'i/k'"),
    ({"fold": "1/5", "test_signers": "a"}, "either --test-signers or --fold"),
    ({"augment_policy": "wild"}, "augment_policy must be one of light, strong"),
    ({"mix": "blend"}, "mix must be one of none, mixup, cutmix"),
    ({"mix": "mixup", "mix_alpha": 0}, "mix_alpha must be positive"),
])
def test_fold_and_augmentation_settings_are_checked(overrides, message):
    from keras_sign.config import load_config

    with pytest.raises(KerasSignError, match=message):
        load_config(overrides=overrides)


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
