"""`keras_sign.hands`: the palm detector's decoding, the regions and warps, and the whole stage on real photos."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, SAMPLE, shared_set
from keras_sign.errors import KerasSignError
from keras_sign.hands.detector import Hand, HandDetector, checked_model_file
from keras_sign.hands.geometry import Roi, crop_box, roi_from_landmarks, roi_from_palm, upright_rotation
from keras_sign.hands.images import read_upright
from keras_sign.hands.palm import anchor_centres, weighted_nms

FIXTURE = Path(__file__).parent / "fixtures" / "digit-3-hand.json"


@pytest.fixture(scope="module")
def detector():
    return HandDetector()


def test_the_anchors_are_the_ssd_grid_of_the_palm_model():
    anchors = anchor_centres()
    assert anchors.shape == (2016, 2)
    # stride 8: a 24 x 24 grid, 2 anchors a cell; strides 16 (three layers): 12 x 12, 6 anchors a cell
    np.testing.assert_allclose(anchors[:2], [[0.5 / 24, 0.5 / 24]] * 2)
    np.testing.assert_allclose(anchors[2], [1.5 / 24, 0.5 / 24])
    np.testing.assert_allclose(anchors[1152:1158], [[0.5 / 12, 0.5 / 12]] * 6)
    np.testing.assert_allclose(anchors[-1], [11.5 / 12, 11.5 / 12])


def test_weighted_nms_merges_overlapping_boxes_by_score():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float64)
    keypoints = np.zeros((3, 7, 2))
    keypoints[1] += 3.0
    kept = weighted_nms(np.array([0.9, 0.3, 0.6]), boxes, keypoints)
    assert [round(score, 2) for score, _, _ in kept] == [0.9, 0.6]
    np.testing.assert_allclose(kept[0][1], [0.25, 0, 10.25, 10])  # (0.9 * box0 + 0.3 * box1) / 1.2
    np.testing.assert_allclose(kept[0][2], np.full((7, 2), 0.75))
    np.testing.assert_allclose(kept[1][1], boxes[2])


@pytest.mark.parametrize("direction, rotation", [((0, -1), 0.0), ((1, 0), math.pi / 2), ((0, 1), -math.pi),
                                                 ((-1, 0), -math.pi / 2)])
def test_the_rotation_turns_the_hand_upright(direction, rotation):
    assert upright_rotation((50, 50), (50 + direction[0], 50 + direction[1])) == pytest.approx(rotation)
    roi = Roi(100, 100, 20, upright_rotation((50, 50), (50 + direction[0], 50 + direction[1])))
    # The region's own "up" (from its centre to the middle of its top edge) is the hand's direction.
    centre, top = roi.to_image([[0.5, 0.5], [0.5, 0.0]])
    np.testing.assert_allclose((top - centre) / 10, direction, atol=1e-9)


def test_a_palm_region_is_square_turned_moved_up_the_hand_and_scaled():
    keypoints = np.zeros((7, 2))
    keypoints[0], keypoints[2] = (100, 120), (130, 120)  # the hand points right
    roi = roi_from_palm((90, 100, 130, 130), keypoints)  # 40 x 30 palm box, centre (110, 115)
    assert roi.rotation == pytest.approx(math.pi / 2) and roi.size == pytest.approx(40 * 2.6)
    # half the box's height (30) along the hand's direction (+x)
    assert (roi.x, roi.y) == pytest.approx((110 + 15, 115))


def test_the_warp_into_a_region_and_back_are_inverses():
    import cv2

    roi = Roi(120.0, 80.0, 64.0, 0.7)
    matrix = roi.warp_matrix(224)
    points = np.array([[0.1, 0.2], [0.5, 0.5], [0.9, 0.3]])
    image_points = roi.to_image(points)
    view = cv2.transform(image_points[None].astype(np.float64), matrix)[0]
    np.testing.assert_allclose(view / 224, points, atol=1e-6)


def test_the_crop_is_the_landmarks_square_with_a_margin():
    landmarks = np.array([[10, 20, 0], [50, 30, 0], [30, 100, 0]], np.float64)
    assert crop_box(landmarks, 0.25) == pytest.approx((30 - 60, 60 - 60, 120))  # 80 tall, +25% each side
    assert crop_box(landmarks, 0.0) == pytest.approx((-10, 20, 80))


def test_a_real_photo_gives_the_recorded_landmarks(detector):
    """A digit photo of the embedded sample, through both model sizes: the landmarks recorded when the stage
    was written (and checked by eye on the drawn skeleton) come back within a pixel."""
    recorded = json.loads(FIXTURE.read_text())
    image, scale = read_upright(REPO / recorded["photo"])
    for complexity in ("full", "lite"):
        stage = detector if complexity == "full" else HandDetector("lite")
        [hand] = stage.find(image)
        expected = Hand.from_json(recorded[complexity])
        assert hand.handedness == expected.handedness == "right" and hand.presence > 0.9
        np.testing.assert_allclose(hand.landmarks[:, :2], expected.landmarks[:, :2], atol=1.0)
        np.testing.assert_allclose(hand.roi, expected.roi, atol=1.0)


def test_the_sample_holds_hands_and_tight_crops_need_the_padded_retry(detector):
    photos = sorted(SAMPLE.glob("*/*.JPG"))[::8]
    without_retry = HandDetector(retry_border=0)
    found = [bool(detector.find(read_upright(photo)[0])) for photo in photos]
    first_try = [bool(without_retry.find(read_upright(photo)[0])) for photo in photos]
    assert sum(found) >= 0.95 * len(photos)  # 394 of the 400 photos
    assert sum(first_try) < sum(found)  # the retry finds hands the first try misses


def test_no_hand_on_an_empty_backdrop(detector):
    rng = np.random.default_rng(0)
    wall = np.clip(rng.normal(170, 6, (240, 320, 3)) + np.linspace(-20, 20, 320)[None, :, None], 0, 255)
    assert detector.find(wall.astype(np.uint8)) == []


def test_no_hand_in_the_alphabets_nothing_photos(detector):
    """The palm detector fires on some of them; the landmark model's presence rejects every one."""
    photos = sorted((shared_set("asl_alphabet_subset") / "nothing").iterdir())[:20]
    assert all(detector.find(read_upright(photo)[0]) == [] for photo in photos)


def test_a_hand_that_moves_is_followed_without_detecting_it_again(detector):
    image, _ = read_upright(SAMPLE / "5" / sorted(p.name for p in (SAMPLE / "5").iterdir())[0])
    frames = [np.roll(image, shift, axis=1) for shift in range(0, 12, 2)]
    detector.reset()
    tracked = [detector.track(frame) for frame in frames]
    assert all(len(hands) == 1 for hands in tracked)
    # Detected on the first frame (a palm score); followed by its landmarks after (none).
    assert tracked[0][0].palm_score is not None and all(hands[0].palm_score is None for hands in tracked[1:])
    wrists = [hands[0].landmarks[0, 0] for hands in tracked]
    assert wrists[-1] - wrists[0] == pytest.approx(10, abs=3)  # the wrist moved with the hand
    assert detector.track(np.zeros_like(image)) == [] and detector.tracked == []  # lost: detection next time


def test_the_next_region_comes_from_the_landmarks(detector):
    image, _ = read_upright(SAMPLE / "3" / "IMG_1121.JPG")
    [hand] = detector.find(image)
    roi = roi_from_landmarks(hand.landmarks)
    assert abs(roi.rotation) < 0.6  # the digit 3 is signed upright
    assert roi.size > 1.9 * (hand.landmarks[:, 1].max() - hand.landmarks[:, 1].min())


def test_a_damaged_or_missing_model_file_is_one_line(tmp_path):
    assets = tmp_path / "assets"
    shutil.copytree(Path(checked_model_file("hand_landmark_full.tflite")).parent, assets)
    (assets / "palm_detection_lite.tflite").write_bytes(b"not a model")
    (assets / "hand_landmark_lite.tflite").unlink()
    with pytest.raises(KerasSignError, match="palm_detection_lite.tflite is damaged .*reinstall keras-sign"):
        HandDetector("lite", assets=assets)
    shutil.copy(checked_model_file("palm_detection_lite.tflite"), assets / "palm_detection_lite.tflite")
    with pytest.raises(KerasSignError, match="hand_landmark_lite.tflite is missing"):
        HandDetector("lite", assets=assets)


def test_bad_settings_and_images_are_one_line():
    with pytest.raises(KerasSignError, match="Unknown hand model 'huge'"):
        HandDetector("huge")
    with pytest.raises(KerasSignError, match="--max-hands must be 1 or more"):
        HandDetector(max_hands=0)
    with pytest.raises(KerasSignError, match="must be RGB uint8"):
        HandDetector().find(np.zeros((10, 10, 3), np.float32))


def test_two_hands_give_the_most_confident_one_or_both(detector):
    first, _ = read_upright(SAMPLE / "3" / "IMG_1121.JPG")
    second, _ = read_upright(SAMPLE / "5" / sorted(p.name for p in (SAMPLE / "5").iterdir())[0])
    both = np.concatenate([first, second], axis=1)  # two people's hands side by side
    [one] = detector.find(both)
    two = HandDetector(max_hands=2).find(both)
    assert len(two) == 2 and two[0].presence >= two[1].presence
    sides = sorted(hand.landmarks[0, 0] < first.shape[1] for hand in two)
    assert sides == [False, True]  # one in each half, not the same hand twice
    assert one.landmarks[0, 0] == pytest.approx(two[0].landmarks[0, 0])


def test_a_hand_that_leaves_the_video_and_comes_back_is_found_again(detector):
    image, _ = read_upright(SAMPLE / "3" / "IMG_1121.JPG")
    frames = [image, image, np.zeros_like(image), np.zeros_like(image), image]
    detector.reset()
    found = [detector.track(frame) for frame in frames]
    assert [len(hands) for hands in found] == [1, 1, 0, 0, 1]
    assert found[-1][0].palm_score is not None  # detected afresh when it came back


def test_a_hand_cut_by_the_border_or_a_large_photo(detector):
    image, _ = read_upright(SAMPLE / "3" / "IMG_1121.JPG")
    [whole] = detector.find(image)
    large = np.kron(image, np.ones((30, 30, 1), np.uint8))  # 3000 x 3000: 9 megapixels
    [big] = detector.find(large)
    np.testing.assert_allclose(big.landmarks[:, :2] / 30, whole.landmarks[:, :2], atol=2.0)
    half = image[:, : image.shape[1] // 2]  # the hand cut in two by the photo's edge
    for hand in detector.find(half):  # found or not, a hand it reports lies mostly in the part that shows
        inside = (hand.landmarks[:, 0] >= 0) & (hand.landmarks[:, 0] <= half.shape[1])
        assert hand.presence >= 0.5 and inside.mean() >= 0.5
