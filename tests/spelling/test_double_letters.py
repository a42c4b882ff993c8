"""Double letters end to end: a clip whose LL is held, slid and held again, spelled through the hand stage."""

from adapt_fixtures import landmark_parent  # noqa: F401  (fixture)
from conftest import run_cli


def test_a_slid_double_letter_is_typed_twice_through_the_hand_stage(landmark_parent, tmp_path):  # noqa: F811
    clip = tmp_path / "ball"
    made = run_cli("data", "clip", "--text", "BALL", "--run", landmark_parent, "--split", "train", "--double", "slide",
                   "--seed", "1", "--out", clip)
    assert made.returncode == 0, made.stderr[-2000:]
    spelled = {}
    for rule in ([], ["--repeat-move", "0"]):
        result = run_cli("transcribe", landmark_parent, clip / "frames", "--fps", "15", *rule)
        assert result.returncode == 0, result.stderr[-2000:]
        spelled[bool(rule)] = result.stdout.strip().splitlines()[-1]
    assert "LL" in spelled[False], spelled  # the default --repeat-move 0.15
    assert "L" in spelled[True] and "LL" not in spelled[True], spelled  # without it: one long hold
