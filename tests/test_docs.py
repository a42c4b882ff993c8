"""The documentation: the README is a front door, the MkDocs site builds strictly, every `keras-sign` command
it shows is one the command line accepts, and the options table is the one the code declares."""

import re
import shlex
import subprocess
import sys

import click
import pytest

from conftest import REPO
from keras_sign.cli import cli
from keras_sign.cli.options import options_table

PAGES = sorted((REPO / "docs").rglob("*.md"))
README_MAX_LINES = 250
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
SHELL_FENCES = {"bash", "sh", "shell", "console"}


def shell_commands(path):
    """`keras-sign ...` (or `python cli.py ...`) command lines in a Markdown file's shell code blocks, continuation
    lines joined, as `(line number, tokens)`."""
    text = path.read_text(encoding="utf-8")
    commands = []
    for match in FENCE.finditer(text):
        if match[1] not in SHELL_FENCES:
            continue
        first_line = text.count("\n", 0, match.start(2)) + 1
        joined, start = "", None
        for number, line in enumerate(match[2].splitlines(), first_line):
            start = number if not joined else start
            joined += line.rstrip("\\").rstrip() + " " if line.rstrip().endswith("\\") else line
            if line.rstrip().endswith("\\"):
                continue
            for part in re.split(r"&&|\|\||;|\|", joined):
                tokens = shlex.split(part.strip().removeprefix("$ "), comments=True)
                while tokens and re.match(r"^[A-Z_]+=", tokens[0]):  # KERAS_BACKEND=jax keras-sign ...
                    tokens = tokens[1:]
                if tokens[:1] == ["keras-sign"]:
                    commands.append((start, tokens[1:]))
                elif tokens[:2] == ["python", "cli.py"]:
                    commands.append((start, tokens[2:]))
            joined = ""
    return commands


def parse_command_line(tokens):
    """Parse a command line exactly as `keras-sign` would, down to the last sub-command, without running it."""
    command, name, args, context = cli, "keras-sign", list(tokens), None
    while True:
        context = command.make_context(name, args, parent=context)
        if not isinstance(command, click.Group):
            return context
        rest = [*getattr(context, "_protected_args", []), *context.args]
        name, command, args = command.resolve_command(context, rest)


def _documented_commands():
    return [(path, line, tokens) for path in [REPO / "README.md", *PAGES] for line, tokens in shell_commands(path)]


def test_the_readme_is_a_front_door():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; the rest belongs on the docs site"
    assert "pytest -m slow" in lines and "pytest" in lines  # the test commands CI runs


def test_every_command_the_docs_show_is_accepted_by_the_command_line():
    commands = _documented_commands()
    assert len(commands) >= 60, "the docs show fewer commands than expected: is the fence language bash?"
    refused = []
    for path, line, tokens in commands:
        try:
            parse_command_line(tokens)
        except click.exceptions.Exit:  # --help, --version
            pass
        except click.BadParameter as error:
            if "does not exist" not in error.format_message():  # a path of the reader's, e.g. a run folder
                refused.append(f"{path.relative_to(REPO)}:{line}: keras-sign {shlex.join(tokens)}: {error.format_message()}")
        except click.UsageError as error:
            refused.append(f"{path.relative_to(REPO)}:{line}: keras-sign {shlex.join(tokens)}: {error.format_message()}")
    assert not refused, "\n".join(refused)


def test_the_parser_of_the_docs_commands_refuses_what_the_cli_refuses():
    with pytest.raises(click.UsageError, match="No such option"):
        parse_command_line(["train", "--epoch", "3"])
    with pytest.raises(click.BadParameter):
        parse_command_line(["export", "RUN", "--quantize", "int4"])
    assert parse_command_line(["data", "validate", "folder"]).params["path"] == "folder"


def test_the_options_table_on_the_training_page_is_the_one_the_code_declares():
    text = (REPO / "docs" / "training.md").read_text(encoding="utf-8")
    shown = text.split("<!-- options-table -->\n", 1)[1].split("\n<!-- /options-table -->", 1)[0]
    assert shown.strip() == options_table().strip(), (
        "docs/training.md's options table is out of date; paste the output of "
        "`python -c 'from keras_sign.cli.options import options_table; print(options_table())'` between its markers")


def test_the_docs_site_builds_strictly(tmp_path):
    """Broken links between pages, pages missing from the nav and docstrings mkdocstrings cannot read fail."""
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / "site" / "index.html").is_file()
