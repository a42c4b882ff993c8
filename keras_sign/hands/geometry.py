"""The geometry of the hand stage, in image pixels (x right, y down): rotated square regions of interest, the
affine warps in and out of them, and the square crop a classifier sees.

MediaPipe's graphs describe each step (modules/hand_landmark/*.pbtxt, modules/palm_detection/*.pbtxt): the
region is a square turned so that the hand points up in it, the landmark model sees it warped to 224 x 224,
and what the model finds is mapped back by the same rotation. The settings below are theirs.
"""

import dataclasses
import math

import numpy as np

# The ROI around a palm detection: turned so that the wrist (palm keypoint 0) to the middle finger's
# knuckle (keypoint 2) points up, moved half its height along that axis, squared, 2.6 times the palm box.
PALM_ROI = {"scale": 2.6, "shift": -0.5}
# The ROI around landmarks, for the next video frame: twice the hand's box, moved a tenth of it up the hand.
TRACKING_ROI = {"scale": 2.0, "shift": -0.1}
WRIST, INDEX_MCP, MIDDLE_MCP, RING_MCP = 0, 5, 9, 13


def normalize_angle(angle):
    """An angle in radians, brought into [-pi, pi)."""
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


def upright_rotation(start, end):
    """The rotation (radians) that turns the direction start -> end (image pixels) to point up."""
    return normalize_angle(math.pi / 2 - math.atan2(-(end[1] - start[1]), end[0] - start[0]))


@dataclasses.dataclass(frozen=True)
class Roi:
    """A square region of the image: its centre, its side and its rotation (radians; 0 is upright), in pixels."""

    x: float
    y: float
    size: float
    rotation: float

    def to_image(self, points):
        """Points `(n, 2)` in the region's own unit square ([0, 1]^2, as the landmark model sees it) to image
        pixels."""
        cos, sin = math.cos(self.rotation), math.sin(self.rotation)
        u, v = (np.asarray(points, np.float64)[:, :2] - 0.5).T * self.size
        return np.stack([self.x + cos * u - sin * v, self.y + sin * u + cos * v], axis=1)

    def warp_matrix(self, side):
        """The 2x3 affine matrix from image pixels to the pixels of a `side` x `side` view of the region (for
        `cv2.warpAffine`, which takes the forward map)."""
        corners = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
        source = self.to_image(corners).astype(np.float32)
        target = (corners * side).astype(np.float32)
        import cv2

        return cv2.getAffineTransform(source, target)


def transformed(x, y, width, height, rotation, scale, shift):
    """MediaPipe's RectTransformation of a rotated box: moved `shift` of its height along its own up axis,
    squared on its long side, scaled: the `Roi`."""
    x += -math.sin(rotation) * shift * height
    y += math.cos(rotation) * shift * height
    return Roi(x, y, max(width, height) * scale, rotation)


def roi_from_palm(box, keypoints):
    """The landmark model's region for a palm detection: `box` (x0, y0, x1, y1) and its 7 keypoints, pixels."""
    rotation = upright_rotation(keypoints[0], keypoints[2])
    (x0, y0, x1, y1) = box
    return transformed((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0, rotation, **PALM_ROI)


def roi_from_landmarks(landmarks):
    """The region in which to look for this hand in the next video frame: the box of its 21 landmarks (pixels)
    in the hand's own upright frame, turned from the wrist to the middle of its knuckles."""
    points = np.asarray(landmarks, np.float64)[:, :2]
    knuckles = (points[[INDEX_MCP, RING_MCP]].mean(axis=0) + points[MIDDLE_MCP]) / 2
    rotation = upright_rotation(points[WRIST], knuckles)
    centre = (points.min(axis=0) + points.max(axis=0)) / 2
    cos, sin = math.cos(-rotation), math.sin(-rotation)
    relative = points - centre
    upright = np.stack([cos * relative[:, 0] - sin * relative[:, 1], sin * relative[:, 0] + cos * relative[:, 1]], 1)
    low, high = upright.min(axis=0), upright.max(axis=0)
    middle = (low + high) / 2
    cos, sin = math.cos(rotation), math.sin(rotation)
    x = centre[0] + cos * middle[0] - sin * middle[1]
    y = centre[1] + sin * middle[0] + cos * middle[1]
    return transformed(x, y, *(high - low), rotation, **TRACKING_ROI)


def crop_box(landmarks, margin):
    """The square, axis-aligned box `(x0, y0, side)` (pixels, it may reach past the image) that a classifier sees
    of a hand: the box of its landmarks, squared on its long side and grown by `margin` of that side on each
    side."""
    points = np.asarray(landmarks, np.float64)[:, :2]
    low, high = points.min(axis=0), points.max(axis=0)
    side = float((high - low).max() * (1 + 2 * margin))
    centre = (low + high) / 2
    return float(centre[0] - side / 2), float(centre[1] - side / 2), side


def letterbox(width, height, side):
    """`(scale, pad_x, pad_y)` of an image fitted into a `side` x `side` square keeping its aspect ratio and
    centred: a pixel (x, y) of the image lands at (x * scale + pad_x, y * scale + pad_y)."""
    scale = side / max(width, height)
    return scale, (side - width * scale) / 2, (side - height * scale) / 2


def integer_box(box):
    """A crop box `(x0, y0, side)` in whole pixels: training and inference cut exactly the same pixels."""
    x0, y0, side = box
    return int(round(x0)), int(round(y0)), max(1, int(round(side)))
