import pytest

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
