"""Command-line options made from the settings they set: each training option is declared once, as a
`keras_sign.config.TrainConfig` field with its help text, and becomes a click option here.

    @config_options            # --arch, --epochs, ... --out: one per TrainConfig field, with --config
    def train(config_path, **flags): ...

`options_table()` renders the same declarations as the Markdown table of docs/training.md (a test
checks that the page shows it).
"""

import dataclasses
import math
import typing

import click

from keras_sign.config import TrainConfig
from keras_sign.tables import markdown_table


class _FiniteFloat(click.ParamType):
    """A float option that refuses nan and inf: `--fps nan` would otherwise pass every `>` check unnoticed."""

    name = "float"

    def convert(self, value, param, ctx):
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number; give a number such as 0.5.", param, ctx)
        return number


FINITE_FLOAT = _FiniteFloat()


def _field(name):
    return next(field for field in dataclasses.fields(TrainConfig) if field.name == name)


def _kind(field):
    """The field's type without its `| None`."""
    options = [arg for arg in typing.get_args(field.type) if arg is not type(None)]
    return options[0] if options else field.type


def flag_name(name):
    return "--" + name.replace("_", "-")


def _option(field, help_suffix=""):
    meta, kind = field.metadata, _kind(field)
    text = meta["help"] + help_suffix
    if kind is bool and meta["flag"]:
        return click.option(flag_name(field.name), field.name, is_flag=True, default=None, help=text)
    if kind is bool:
        switch = f"{flag_name(field.name)}/--no-{field.name.replace('_', '-')}"
        return click.option(switch, field.name, default=None, help=text)
    if meta["choices"]:
        kind = click.Choice(list(meta["choices"]))
    elif kind is float:
        kind = FINITE_FLOAT
    return click.option(flag_name(field.name), field.name, type=kind, default=None, help=text)


def backend_option(command):
    """`--backend`, for every command that runs Keras (its help is TrainConfig's)."""
    return _option(_field("backend"))(command)


def config_options(command):
    """`--config FILE` and one option per TrainConfig field, for every command that trains."""
    for field in reversed(dataclasses.fields(TrainConfig)):
        default = _shown_default(field)
        command = _option(field, f" [default: {default}]" if default else "")(command)
    return click.option("--config", "config_path", type=click.Path(),
                        help="YAML file of settings; flags override it.")(command)


def _shown_default(field):
    if field.default is None or field.default is dataclasses.MISSING or field.metadata["flag"]:
        return ""
    return "on" if field.default is True else "off" if field.default is False else str(field.default)


def options_table():
    """The training options as a Markdown table: flag, YAML key, default and meaning."""
    rows = [[f"`{flag_name(field.name)}`", f"`{field.name}`", f"`{_shown_default(field)}`" if _shown_default(field)
             else "", field.metadata["help"]] for field in dataclasses.fields(TrainConfig)]
    return markdown_table(["option", "YAML key", "default", "meaning"], rows, "llll")
