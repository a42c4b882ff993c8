"""`keras_sign.hands.features`: the same hand gives the same numbers wherever it is, however large, on either
side; the written spec's test vector is what the code computes."""

import json
from pathlib import Path

import numpy as np
import pytest

from keras_sign.errors import KerasSignError
from keras_sign.hands.features import FEATURES, SPEC, landmark_features

FIXTURE = Path(__file__).parent / "fixtures" / "digit-3-hand.json"  # the landmarks of a real photo's hand


def real_hand():
    hand = json.loads(FIXTURE.read_text())["full"]
    return np.asarray(hand["landmarks"], np.float64), hand["handedness"]


def turned(points, angle, about):
    cos, sin = np.cos(angle), np.sin(angle)
    moved = points.copy()
    moved[:, :2] = (points[:, :2] - about) @ np.array([[cos, sin], [-sin, cos]]) + about
    return moved


def test_a_hand_moved_and_scaled_gives_the_same_features():
    points, handedness = real_hand()
    features = landmark_features(points, handedness)
    assert features.shape == (FEATURES,) and features.dtype == np.float32
    assert np.allclose(features[:3], 0) and np.hypot(*features[27:29]) == pytest.approx(1.0)
    shifted_and_grown = points * 2.7 + [130.0, -45.0, 0.0]
    np.testing.assert_allclose(landmark_features(shifted_and_grown, handedness), features, atol=1e-5)


def test_a_mirrored_left_hand_reads_as_the_right_hand():
    points, _ = real_hand()
    mirrored = points * [-1, 1, 1] + [640, 0, 0]  # the same hand in a mirrored photo: a left hand
    np.testing.assert_allclose(landmark_features(mirrored, "left"), landmark_features(points, "right"), atol=1e-5)
    assert not np.allclose(landmark_features(mirrored, "left", mirror_left=False), landmark_features(points, "right"))


def test_with_rotate_a_turned_hand_gives_the_same_features_and_without_it_does_not():
    points, handedness = real_hand()
    turned_hand = turned(points, 0.7, points[0, :2] + [10.0, 20.0])
    np.testing.assert_allclose(landmark_features(turned_hand, handedness, rotate=True),
                               landmark_features(points, handedness, rotate=True), atol=1e-5)
    upright = landmark_features(points, handedness, rotate=True).reshape(21, 3)
    assert upright[9, 0] == pytest.approx(0, abs=1e-6) and upright[9, 1] == pytest.approx(-1)  # knuckle straight up
    assert not np.allclose(landmark_features(turned_hand, handedness), landmark_features(points, handedness))


def test_the_specs_test_vector_is_what_the_code_computes():
    vector = SPEC["test_vector"]
    computed = landmark_features(np.asarray(vector["landmarks"]), vector["handedness"])
    np.testing.assert_allclose(computed, vector["features"], atol=1e-5)
    assert len(vector["features"]) == SPEC["features"] == FEATURES
    json.dumps(SPEC)  # it goes into model.json as it is


@pytest.mark.parametrize("points, message", [(np.zeros((20, 3)), "21 landmarks"),
                                             (np.full((21, 3), np.nan), "not numbers"),
                                             (np.ones((21, 3)), "no size")])
def test_what_is_not_a_hand_is_one_line(points, message):
    with pytest.raises(KerasSignError, match=message):
        landmark_features(points, "right")
