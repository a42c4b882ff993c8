"""Typed training configuration: defaults, YAML files, flag overrides, checks.

Precedence, lowest to highest: the defaults below, `--config FILE.yaml`,
then command-line flags. The resolved config is written to every run folder.
"""

import dataclasses
import logging
import math
import typing
from pathlib import Path

import yaml

from keras_sign.backend import CHOICES as BACKEND_CHOICES
from keras_sign.errors import KerasSignError

log = logging.getLogger("keras_sign")

SPLIT_METHODS = ("auto", "stratified", "signer")
OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("constant", "cosine", "step")
# Training augmentation recipes (keras_sign.data.augment applies them): the most each draw moves, i.e.
# rotation (turns), translation and zoom (fractions), contrast, and for "strong" also brightness (of 255),
# colour gain per channel, a mirror (a left-handed signer's sign) and one erased rectangle (a hand partly hidden).
AUGMENT_POLICIES = {
    "light": {"rotation": 0.05, "shift": 0.1, "zoom": 0.1, "contrast": 0.2},
    # light's geometry plus colour, mirror and erasing: a first setting with twice the geometry (rotation
    # 0.08, shift 0.15, zoom 0.2), brightness 40, gain 0.2 and erasing 0.3 left MobileNetV3-Small at 0.2-0.5
    # training accuracy after 30 epochs (docs/results.md, "How well does it generalise?")
    "strong": {"rotation": 0.05, "shift": 0.1, "zoom": 0.15, "contrast": 0.3, "brightness": 25.0, "gain": 0.1,
               "mirror": True, "erase": 0.25},
    # light's geometry plus strong's colour alone: another signer's skin, light and camera white balance
    "colour": {"rotation": 0.05, "shift": 0.1, "zoom": 0.1, "contrast": 0.2, "brightness": 25.0, "gain": 0.1},
}
MIX_DEFAULT_ALPHA = {"mixup": 0.2, "cutmix": 1.0}  # Beta(alpha, alpha) of the blends: the papers' ImageNet settings
MIX_METHODS = ("none", *MIX_DEFAULT_ALPHA)
# crop: the square around the hand (keras_sign.hands); landmarks: the hand's landmarks, for a landmark model
# (--arch landmarks, which sets it); fusion: both, for a fusion model (--arch fusion:<cnn>); none: the whole photo
HAND_STAGES = ("none", "crop", "landmarks", "fusion")
IMAGE_CACHES = ("auto", "memory", "disk")  # where decoded training images are kept (data.image_cache)
# Settings that change where or how fast a run computes, not what it computes: a resume may change them.
HOW_NOT_WHAT = ("checkpoint_every", "backend", "image_cache", "image_cache_dir")
SMOKE = {"epochs": 1, "image_size": 32, "batch_size": 8, "limit_per_class": 10, "warmup_epochs": 0, "patience": None}


def setting(default, help, *, choices=None, flag=False):
    """A `TrainConfig` field with what the command line and the docs say of it: `help`, the allowed
    `choices`, and `flag` for an on-only switch (--smoke) instead of an --x/--no-x pair."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices, "flag": flag})


@dataclasses.dataclass
class TrainConfig:
    """Everything `keras-sign train` needs; defaults train on the embedded sample in about a minute. Each
    field is declared once, here: `keras-sign train --help`, YAML configs and the docs' option table read
    it (`keras_sign.cli.options`)."""

    arch: str = setting("mobilenetv3_small", "Architecture name (`keras-sign models` lists them).")
    dataset: str = setting("digits", "Named dataset: digits (embedded), numbers, alphabet, fingerspelling.")
    data_dir: str | None = setting(None, "Your own folder: ROOT/CLASS/image or ROOT/SIGNER/CLASS/image (replaces "
                                         "--dataset).")
    classes: str | None = setting(None, "Classes to use: 'all' or a comma-separated list (default: the dataset's "
                                        "own).")
    split: str = setting("auto", "How to split train/val/test: auto (by signer where the data has signers, else "
                                 "stratified), stratified or signer.", choices=SPLIT_METHODS)
    test_signers: str | None = setting(None, "Signers whose images are the test split (--split signer), e.g. hand3.")
    fold: str | None = setting(None, "Test on fold i of a stratified k-fold, as i/k (--split stratified), e.g. 2/5.")
    val_fraction: float = setting(0.1, "Share of the images (or signers) held out for validation.")
    test_fraction: float = setting(0.1, "Share of the images (or signers) held out for testing.")
    image_size: int = setting(64, "Side of the square model input in pixels (>= 32).")
    center_crop: bool = setting(False, "Resize the shorter side to size / 0.875 and cut the centre (default: resize "
                                       "the whole image).")
    batch_size: int = setting(32, "Images per training step.")
    epochs: int = setting(30, "Epochs to train.")
    lr: float = setting(2e-3, "Adam learning rate.")
    dropout: float | None = setting(None, "Dropout before the classifier (default: torchvision's, 0.2 for "
                                          "MobileNetV3, none for the others).")
    # torchvision's MobileNetV3 uses 0.99 (PyTorch 0.01), tuned for 600 ImageNet epochs. Over the few
    # hundred steps of a small dataset the moving variance is then still mostly its initial 1.0 and
    # evaluation collapses to one class; 0.9 (PyTorch's default 0.1) settles within ~50 steps.
    bn_momentum: float = setting(0.9, "Batch-norm moving-average momentum (Keras' convention).")
    hands: str = setting("none", "crop: find the hand first (MediaPipe's hand models) and train on the square "
                                 "around it; photos without a hand are left out of training and answer `nothing` "
                                 "in evaluation. landmarks: the hand's 21 landmarks, what a landmark model "
                                 "(--arch landmarks, which sets it) reads. fusion: the square and the landmarks, for --arch "
                                 "fusion:<cnn> (which sets it). none: the whole photo.", choices=HAND_STAGES)
    hand_models: str = setting("full", "The hand stage's models: full, or lite (faster).", choices=("full", "lite"))
    hand_margin: float = setting(0.25, "The hand's crop: the square around its landmarks, grown by this share of "
                                       "its side on each side.")
    mirror_left: bool = setting(True, "With a hand stage: mirror left hands, so the model sees every hand as a "
                                      "right hand.")
    hand_cache_dir: str | None = setting(None, "Where the hands found in each photo are kept (default "
                                               "$KERAS_SIGN_HAND_CACHE or ~/.cache/keras_sign/hands).")
    augment: bool = setting(True, "Training augmentation.")
    augment_policy: str = setting("light", "light: small affine and contrast; strong: larger, plus colour, mirror, "
                                           "erasing; colour: light plus brightness and colour cast.",
                                  choices=tuple(AUGMENT_POLICIES))
    background_augment: bool = setting(False, "Replace the plain backdrop behind the hand (black, a wall) by random "
                                              "ones while training.")
    mix: str = setting("none", "Blend pairs of training images and their labels: mixup (whole images) or cutmix (a "
                               "pasted rectangle).", choices=MIX_METHODS)
    mix_alpha: float | None = setting(None, "Beta(alpha, alpha) of the blend's share (default 0.2 for mixup, 1.0 for "
                                            "cutmix).")
    weights: str = setting("none", "Starting weights: none, imagenet (torchvision's), imagenet-keras "
                                   "(keras.applications' MobileNetV3Small), or a .pth/.safetensors/.h5/.weights.h5 "
                                   "file.")
    init_from: str | None = setting(None, "Start from the model of another run folder (same architecture).")
    freeze_backbone: int = setting(0, "Train only the head for N epochs, then unfreeze everything.")
    finetune_lr: float | None = setting(None, "Learning rate after unfreezing (default: --lr / 10).")
    optimizer: str = setting("adam", "adam (as the study) or adamw.", choices=OPTIMIZERS)
    weight_decay: float | None = setting(None, "Decoupled weight decay (default 0 for adam, 0.01 for adamw).")
    label_smoothing: float = setting(0.0, "Label smoothing of the cross-entropy.")
    schedule: str = setting("constant", "Learning-rate schedule: constant, cosine (to 0) or step (x0.1 at 50% and "
                                        "75% of the epochs).", choices=SCHEDULES)
    warmup_epochs: int = setting(0, "Linear learning-rate warm-up before the schedule.")
    patience: int | None = setting(None, "Stop after N epochs without a better validation accuracy.")
    checkpoint_every: int | None = setting(None, "Checkpoint every N epochs (default: spaced to cost about 3% of "
                                                 "the training time).")
    image_cache: str = setting("auto", "Keep decoded images in memory or in a file on disk, read batch by batch "
                                       "(auto: disk when they would take over a quarter of the memory).",
                               choices=IMAGE_CACHES)
    image_cache_dir: str | None = setting(None, "Where disk image caches live (default $KERAS_SIGN_IMAGE_CACHE or "
                                                "~/.cache/keras_sign/images).")
    mixed_precision: bool = setting(False, "bfloat16 compute, float32 weights.")
    deterministic: bool = setting(False, "Deterministic kernels and data order (slower): same seed, same weights.")
    devices: str = setting("1", "Data parallel over N devices or 'all' (JAX backend).")
    limit_per_class: int | None = setting(None, "Use at most N images per class (and signer).")
    smoke: bool = setting(False, "Shrink the job to a seconds-long check (1 epoch, 32 px, 10 images per class).",
                          flag=True)
    seed: int = setting(42, "Seeds the split, the initial weights, the batches and their augmentation.")
    backend: str = setting("auto", "Keras backend; auto picks JAX on GPU/TPU, TensorFlow on CPU. KERAS_BACKEND wins.",
                           choices=BACKEND_CHOICES)
    out: str | None = setting(None, "Run folder to write (default `runs/<dataset>-<arch>-<time>`).")
    cache_dir: str | None = setting(None, "Where named datasets live (default $KERAS_SIGN_DATA or "
                                          "~/.keras/datasets/keras_sign).")

    def validate(self):
        """Raise `KerasSignError` naming the first bad value and what to use instead."""
        for field in dataclasses.fields(self):
            choices = field.metadata["choices"]
            if choices and getattr(self, field.name) not in choices:
                raise KerasSignError(f"{field.name} must be one of {', '.join(choices)} "
                                     f"(got '{getattr(self, field.name)}').")
        checks = [
            (self.image_size >= 32, f"image_size must be at least 32 (got {self.image_size})."),
            (self.batch_size >= 1, f"batch_size must be a positive integer (got {self.batch_size})."),
            (self.epochs >= 1, f"epochs must be a positive integer (got {self.epochs})."),
            (self.lr > 0, f"lr must be a positive number such as 1e-3 (got {self.lr})."),
            (self.dropout is None or 0 <= self.dropout < 1, f"dropout must be in [0, 1) (got {self.dropout})."),
            (0 < self.bn_momentum < 1, f"bn_momentum must be in (0, 1), e.g. 0.9 (got {self.bn_momentum})."),
            (0 <= self.freeze_backbone <= self.epochs,
             f"freeze_backbone must be between 0 and epochs ({self.epochs}) (got {self.freeze_backbone})."),
            (self.finetune_lr is None or self.finetune_lr > 0, f"finetune_lr must be positive (got {self.finetune_lr})."),
            (self.weights == "none" or self.init_from is None,
             "Use either --weights or --init-from: both set the starting weights."),
            (self.weight_decay is None or self.weight_decay >= 0, f"weight_decay must be >= 0 (got {self.weight_decay})."),
            (0 <= self.label_smoothing < 1, f"label_smoothing must be in [0, 1) (got {self.label_smoothing})."),
            (0 <= self.warmup_epochs < self.epochs,
             f"warmup_epochs must be between 0 and epochs - 1 (got {self.warmup_epochs})."),
            (self.patience is None or self.patience >= 1, f"patience must be a positive integer (got {self.patience})."),
            (self.checkpoint_every is None or self.checkpoint_every >= 1,
             f"checkpoint_every must be a positive integer (got {self.checkpoint_every})."),
            (self.devices == "all" or (self.devices.isdigit() and int(self.devices) >= 1),
             f"devices must be a positive integer or 'all' (got '{self.devices}')."),
            (self.limit_per_class is None or self.limit_per_class >= 1,
             f"limit_per_class must be a positive integer (got {self.limit_per_class})."),
            (0 <= self.hand_margin <= 2, f"hand_margin must be between 0 and 2, e.g. 0.25 (got {self.hand_margin})."),
            (self.mix_alpha is None or self.mix_alpha > 0, f"mix_alpha must be positive, e.g. 0.2 (got {self.mix_alpha})."),
            (self.fold is None or _fold_ok(self.fold),
             f"fold must be 'i/k' with 1 <= i <= k and k >= 2, e.g. 1/5 (got '{self.fold}')."),
            (not (self.fold and self.test_signers), "Use either --test-signers or --fold: both choose the test split."),
            (
                0 < self.val_fraction < 0.5 and 0 < self.test_fraction < 0.5,
                "val_fraction and test_fraction must each be between 0 and 0.5.",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise KerasSignError(message)
        return self

    def to_dict(self):
        return dataclasses.asdict(self)


def _fold_ok(fold):
    parts = str(fold).split("/")
    return len(parts) == 2 and all(p.isdigit() for p in parts) and 1 <= int(parts[0]) <= int(parts[1]) >= 2


def _coerce(name, value, field_type):
    """Convert a YAML or flag value to the field's type, or explain what was expected."""
    if value is None:
        return None
    optional_of = [arg for arg in typing.get_args(field_type) if arg is not type(None)]
    wanted = optional_of[0] if optional_of else field_type
    if wanted is bool:
        if isinstance(value, bool):
            return value
        raise KerasSignError(f"'{name}' must be true or false (got {value!r}).")
    try:
        converted = wanted(value)
    except (TypeError, ValueError):
        kind = {int: "a whole number", float: "a number"}.get(wanted, "text")
        raise KerasSignError(f"'{name}' must be {kind} (got {value!r}).") from None
    if wanted is int and isinstance(value, float) and value != converted:
        raise KerasSignError(f"'{name}' must be a whole number (got {value!r}).")
    if wanted is float and not math.isfinite(converted):  # nan passes every `>` check unnoticed
        raise KerasSignError(f"'{name}' must be a finite number (got {value!r}).")
    return converted


def read_config_text(path):
    """The text of a config file: UTF-8 with or without a byte-order mark, or UTF-16 with one (what
    Windows PowerShell writes); anything else is a clear error."""
    data = Path(path).read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    else:
        encoding = "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        text = None
    if text is None or "\x00" in text:
        raise KerasSignError(
            f"Config file {path} is not a text file in UTF-8 (or UTF-16 with a byte-order mark); save it as UTF-8 YAML."
        )
    return text


def read_yaml_mapping(path, what, option, of):
    """The mapping a YAML file holds, or a one-line error naming the file, the option and the fix."""
    path = Path(path)
    if not path.is_file():
        raise KerasSignError(f"{what} {path} does not exist; pass an existing YAML file to {option}.")
    try:
        loaded = yaml.safe_load(read_config_text(path)) or {}
    except yaml.YAMLError as error:
        raise KerasSignError(f"{what} {path} is not valid YAML ({error}); fix the syntax.") from None
    if not isinstance(loaded, dict):
        raise KerasSignError(f"{what} {path} must hold a mapping of {of}.")
    return loaded


def load_config(path=None, overrides=None):
    """Build a validated `TrainConfig` from an optional YAML file and flag overrides.

    Args:
        path: a YAML file whose keys are `TrainConfig` field names, or None.
        overrides: a dict of values that win over the file; None values are ignored.

    Example:
        >>> load_config(overrides={"epochs": 2}).epochs
        2
    """
    values = {}
    if path is not None:
        values.update(read_yaml_mapping(path, "Config file", "--config", "keys to values"))
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    fields = {field.name: field for field in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise KerasSignError(f"Unknown config key(s) {', '.join(unknown)}; known keys are {', '.join(fields)}.")
    typed = {name: _coerce(name, value, fields[name].type) for name, value in values.items()}
    config = TrainConfig(**typed).validate()  # the values given, before smoke shrinks them
    return shrink_for_smoke(config) if config.smoke else config


def shrink_for_smoke(config):
    """`config` shrunk to a seconds-long check (`SMOKE`), saying what that changes; values given on the
    command line or in a file are validated first (by `load_config`), then shrunk like the defaults."""
    freeze = min(config.freeze_backbone, 1)
    shrunk = dataclasses.replace(config, **SMOKE, freeze_backbone=freeze)
    shrunk.epochs += freeze  # head-only and full training, one epoch each
    changes = [f"{field.name} {getattr(config, field.name)} -> {getattr(shrunk, field.name)}"
               for field in dataclasses.fields(TrainConfig) if getattr(config, field.name) != getattr(shrunk, field.name)]
    if changes:
        log.info("--smoke: %s.", ", ".join(changes))
    return shrunk.validate()


def config_to_yaml(config):
    """The YAML text of a resolved config, loadable again with --config."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
