"""The command line as a whole: what every command's options accept."""

import click
import pytest

from keras_sign.cli import FINITE_FLOAT, cli
from keras_sign.errors import KerasSignError
from keras_sign.spelling.decoder import DecoderSettings


def _commands(group, prefix=()):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


def test_every_float_option_refuses_nan_and_inf():
    """`transcribe --fps nan` was taken and spelled nothing, saying "64 frames (nan s)"."""
    floats = [(path, param.name) for path, command in _commands(cli) for param in command.params
              if isinstance(param.type, click.types.FloatParamType)]
    assert not floats, f"plain float options (they take nan): {floats}"
    finite = [param for _, command in _commands(cli) for param in command.params if param.type is FINITE_FLOAT]
    assert len(finite) >= 15
    for text in ("nan", "inf", "-inf", "NaN"):
        with pytest.raises(click.BadParameter, match="is not a finite number"):
            FINITE_FLOAT.convert(text, None, None)
    assert FINITE_FLOAT.convert("2.5e-3", None, None) == 2.5e-3


@pytest.mark.parametrize("field", ["hold", "smoothing", "repeat_after", "word_gap", "min_confidence"])
def test_decoder_settings_refuse_what_is_not_finite(field):
    """The demo page's settings arrive as JSON, where Python reads `Infinity` and `NaN`."""
    with pytest.raises(KerasSignError, match="must be a finite number"):
        DecoderSettings(**{field: float("inf")}).validate()
