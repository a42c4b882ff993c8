"""Hands drawn on an image: the skeleton of the 21 landmarks, the region the landmark model read and the
square a classifier sees (`keras-sign hands --draw`, the overlay of `transcribe`)."""

import math

import numpy as np

# The 21 landmarks' bones: the thumb, the four fingers, and the palm's edge from the wrist to the little finger.
BONES = ((0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10), (10, 11), (11, 12),
         (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (17, 18), (18, 19), (19, 20), (0, 17))
SKELETON = (0, 230, 0)
REGION = (255, 170, 0)
CROP = (0, 160, 255)


def draw_hands(image, hands, margin):
    """A copy of an RGB image with `hands` drawn on it."""
    import cv2

    canvas = np.ascontiguousarray(image).copy()
    thickness = max(1, round(max(canvas.shape[:2]) / 300))
    for hand in hands:
        points = np.round(hand.landmarks[:, :2]).astype(int)
        for start, end in BONES:
            cv2.line(canvas, tuple(points[start]), tuple(points[end]), SKELETON, thickness, cv2.LINE_AA)
        for point in points:
            cv2.circle(canvas, tuple(point), thickness + 1, SKELETON, -1, cv2.LINE_AA)
        x, y, size, rotation = hand.roi
        corners = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]]) * size
        cos, sin = math.cos(rotation), math.sin(rotation)
        turned = np.stack([x + cos * corners[:, 0] - sin * corners[:, 1], y + sin * corners[:, 0] + cos * corners[:, 1]],
                          axis=1)
        cv2.polylines(canvas, [np.round(turned).astype(np.int32)], True, REGION, thickness, cv2.LINE_AA)
        x0, y0, side = hand.crop_box(margin)
        cv2.rectangle(canvas, (round(x0), round(y0)), (round(x0 + side), round(y0 + side)), CROP, thickness)
        cv2.putText(canvas, f"{hand.handedness} {hand.presence:.2f}", (round(x0), max(round(y0) - 4, 12)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thickness, CROP, thickness, cv2.LINE_AA)
    return canvas
