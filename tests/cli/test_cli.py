"""The command line as a whole: what every command's options accept, and user errors as one line and a
non-zero exit."""

import click
import pytest

from conftest import SAMPLE, run_cli
from keras_sign.cli import FINITE_FLOAT, cli


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


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--data-dir", "/no/such/folder"], "does not exist"),
        (["train", "--dataset", "letters"], "Unknown dataset 'letters'"),
        (["train", "--epochs", "0"], "epochs must be a positive integer"),
        (["train", "--arch", "vgg16", "--epochs", "1"], "Unknown architecture 'vgg16'"),
        (["train", "--dataset", "fingerspelling", "--cache-dir", "/no/cache"], "keras-sign data download"),
        (["evaluate", str(SAMPLE)], "is not a finished run folder"),
    ],
)
def test_user_errors_print_one_line_and_exit_non_zero(args, message):
    result = run_cli(*args)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("Error:")]) == 1


def test_export_and_benchmark_commands_print_one_line_errors():
    for args, message in [(["export", SAMPLE], "is not a finished run folder"),
                          (["benchmark", SAMPLE / "LICENSE.txt"], "is not a model file to run")]:
        result = run_cli(*args)
        assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr
