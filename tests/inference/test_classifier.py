"""`keras_sign.inference.classifier`: one loader for run folders, bundles and bare model files, and what it refuses."""

import shutil

import pytest
from click.testing import CliRunner

from conftest import SAMPLE
from keras_sign.cli import cli
from spelling_fixtures import CLASSES, bundle, trained  # noqa: F401  (fixtures)

pytestmark = pytest.mark.xdist_group("sign_to_text")  # the trained model is shared with those tests


def _invoke(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.output


def _one_line(code, output, *fragments):
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert code == 1 and len(errors) == 1 and "Traceback" not in output, output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


@pytest.mark.parametrize("labels, difference", [
    (CLASSES[:3], "names 4 classes, "),  # a line short
    ([*CLASSES, "extra"], "names 4 classes, "),
    (["zero", *CLASSES[1:]], "class 1 is '0' in "),  # renamed
])
def test_labels_that_disagree_with_model_json_are_refused(bundle, labels, difference):
    """A bundle's labels.txt was ignored whatever it held: predict silently used model.json's classes."""
    (bundle / "labels.txt").write_text("".join(f"{name}\n" for name in labels))
    photo = next((SAMPLE / "1").iterdir())
    _one_line(*_invoke("predict", bundle, photo), "The class names beside the model disagree", difference,
              "labels.txt")


def test_a_bare_tflite_whose_labels_disagree_with_its_metadata_is_refused(bundle, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(bundle / "model.tflite", bare / "model.tflite")
    (bare / "labels.txt").write_text("a\nb\nc\nd\n")
    photo = next((SAMPLE / "1").iterdir())
    _one_line(*_invoke("predict", bare / "model.tflite", photo), "class 1 is '0' in model.tflite's metadata but 'a'")
    (bare / "labels.txt").write_text("".join(f"{name}\n" for name in CLASSES))
    assert _invoke("predict", bare / "model.tflite", photo)[0] == 0
