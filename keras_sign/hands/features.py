"""A hand's 21 landmarks as the numbers a landmark model reads, the same for every person, photo and camera.

    features = landmark_features(hand.landmarks, hand.handedness)     # (63,) float32

The steps (`SPEC`, written into a landmark model's record so that an app can check itself against
`SPEC["test_vector"]`):

1. the landmarks in the photo's pixels: x, y, and z in x's scale relative to the wrist (MediaPipe
   Tasks' HandLandmarker gives x / width, y / height and z / width: multiply them back);
2. the wrist (landmark 0) moved to the origin;
3. a left hand mirrored (x -> -x), so that every hand reads as a right hand;
4. divided by the length, in the image plane, from the wrist to the middle finger's knuckle
   (landmark 9): the hand's size, whatever the distance to the camera;
5. with `rotate`, turned in the image plane so that wrist-to-knuckle points straight up (off by
   default: in ASL the hand's turn alone tells some signs apart, H from U, and on leave-one-signer-out
   Massey the turned features scored lower; see docs/hands.md);
6. flattened point by point: x0, y0, z0, x1, ... (63 numbers).
"""

import numpy as np

from keras_sign.errors import KerasSignError

POINTS = 21
FEATURES = 3 * POINTS
WRIST, MIDDLE_KNUCKLE = 0, 9


def landmark_features(landmarks, handedness, mirror_left=True, rotate=False):
    """`(63,)` float32 features of one hand's `(21, 3)` landmarks; see the module docstring."""
    points = np.asarray(landmarks, np.float64)
    if points.shape != (POINTS, 3) or not np.isfinite(points).all():
        raise KerasSignError(f"A hand has 21 landmarks of x, y and z (got an array of shape {points.shape}, or "
                             "values that are not numbers).")
    points = points - points[WRIST]
    if mirror_left and handedness == "left":
        points[:, 0] = -points[:, 0]
    size = float(np.hypot(*points[MIDDLE_KNUCKLE, :2]))
    if size < 1e-6:
        raise KerasSignError("A hand whose wrist and middle knuckle coincide has no size; its landmarks are not a "
                             "hand's.")
    points /= size
    if rotate:
        x, y = points[MIDDLE_KNUCKLE, :2]
        angle = np.arctan2(x, -y)  # from straight up (image y grows downwards)
        cos, sin = np.cos(angle), np.sin(angle)
        points[:, :2] = points[:, :2] @ np.array([[cos, -sin], [sin, cos]])
    return points.reshape(-1).astype(np.float32)


def _test_hand():
    """A fixed, asymmetric left hand (pixels, to 3 decimals) for the spec's test vector."""
    angles = np.linspace(-0.6, 0.6, 5)
    points = [[320.0, 400.0, 0.0]]
    for finger, angle in enumerate(angles):
        for joint in range(1, 5):
            length = 40.0 * joint * (1.0 + 0.1 * finger)
            points.append([320.0 + length * np.sin(angle), 400.0 - length * np.cos(angle), -5.0 * joint + finger])
    return np.round(np.asarray(points), 3)


SPEC = {
    "features": FEATURES,
    "steps": ("landmarks in pixels (x * width, y * height, z * width); minus the wrist (landmark 0); a left hand's x "
              "negated; divided by the wrist-to-landmark-9 length in x, y; then x0, y0, z0, x1, ... as float32"),
    "test_vector": {"landmarks": _test_hand().tolist(), "handedness": "left",
                    "features": np.round(landmark_features(_test_hand(), "left"), 6).tolist()},
}
