"""Palm detection: MediaPipe's SSD palm detector, decoded as its graph describes it.

    palms = PalmDetector(model_file).detect(rgb_image)   # [Palm(score, box, keypoints)], image pixels

The image is fitted into 192 x 192 keeping its aspect ratio (a black border around it), scaled to [0, 1],
and run. Each of the 2016 anchors (SSD anchors: 4 layers with strides 8, 16, 16, 16, two anchors per layer
at each cell, fixed anchor size) predicts a box (centre x, y, width, height) and 7 keypoints relative to
its cell, and a score logit: sigmoid(clip(logit, +-100)) > 0.5 is a palm. Overlapping palms (IoU > 0.3)
are merged by weighted non-maximum suppression: the boxes and keypoints averaged by score.
(modules/palm_detection/palm_detection_cpu.pbtxt; its anchors, decoding and suppression calculators.)
"""

import dataclasses

import numpy as np

from keras_sign.hands.geometry import letterbox

INPUT_SIDE = 192
STRIDES = (8, 16, 16, 16)
ANCHORS_PER_LAYER = 2  # the layer's scale, and the interpolated one between it and the next layer's
MIN_SCORE = 0.5
SCORE_CLIP = 100.0
NMS_IOU = 0.3
KEYPOINTS = 7


@dataclasses.dataclass(frozen=True)
class Palm:
    """A detected palm: its score, box `(x0, y0, x1, y1)` and 7 keypoints `(7, 2)`, in image pixels."""

    score: float
    box: tuple
    keypoints: np.ndarray


def anchor_centres(side=INPUT_SIDE, strides=STRIDES):
    """`(2016, 2)` anchor centres in [0, 1], in the order of the model's outputs: layers of one stride share a
    grid, whose cells each hold the anchors of all those layers."""
    centres, layer = [], 0
    while layer < len(strides):
        same = sum(1 for stride in strides[layer:] if stride == strides[layer])
        cells = -(-side // strides[layer])
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(grid, same * ANCHORS_PER_LAYER, axis=0))
        layer += same
    return np.concatenate(centres)


def _iou(box, boxes):
    x0, y0 = np.maximum(box[0], boxes[:, 0]), np.maximum(box[1], boxes[:, 1])
    x1, y1 = np.minimum(box[2], boxes[:, 2]), np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-12)


def weighted_nms(scores, boxes, keypoints, iou=NMS_IOU):
    """Indices-free weighted non-maximum suppression: `[(score, box, keypoints)]`, best first. Each kept
    detection is the score-weighted mean of the boxes and keypoints that overlap the best remaining one by more
    than `iou`, with that one's score."""
    order = np.argsort(-scores, kind="stable")
    scores, boxes, keypoints = scores[order], boxes[order], keypoints[order]
    kept = []
    while len(scores):
        overlapping = _iou(boxes[0], boxes) > iou
        overlapping[0] = True
        weights = scores[overlapping] / scores[overlapping].sum()
        kept.append((float(scores[0]), (weights[:, None] * boxes[overlapping]).sum(axis=0),
                     (weights[:, None, None] * keypoints[overlapping]).sum(axis=0)))
        scores, boxes, keypoints = scores[~overlapping], boxes[~overlapping], keypoints[~overlapping]
    return kept


class PalmDetector:
    """MediaPipe's palm detection model in LiteRT; see the module docstring."""

    def __init__(self, model, threads=None):
        self.interpreter = model(threads)
        self.input = self.interpreter.get_input_details()[0]["index"]
        outputs = sorted(self.interpreter.get_output_details(), key=lambda d: d["shape"][-1], reverse=True)
        self.regressors, self.classifiers = outputs[0]["index"], outputs[1]["index"]
        self.anchors = anchor_centres()

    def detect(self, image):
        """The palms in an RGB uint8 image `(h, w, 3)`, best first."""
        import cv2

        height, width = image.shape[:2]
        scale = letterbox(width, height, INPUT_SIDE)[0]
        size = (min(INPUT_SIDE, max(1, round(width * scale))), min(INPUT_SIDE, max(1, round(height * scale))))
        resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        left, top = (INPUT_SIDE - size[0]) // 2, (INPUT_SIDE - size[1]) // 2
        tensor = np.zeros((INPUT_SIDE, INPUT_SIDE, 3), np.float32)  # the black border around the image
        tensor[top:top + size[1], left:left + size[0]] = resized / 255.0
        scale_x, scale_y, pad_x, pad_y = size[0] / width, size[1] / height, left, top
        self.interpreter.set_tensor(self.input, tensor[None])
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self.regressors)[0]
        logits = self.interpreter.get_tensor(self.classifiers)[0, :, 0]
        scores = 1 / (1 + np.exp(-np.clip(logits, -SCORE_CLIP, SCORE_CLIP)))
        found = scores > MIN_SCORE
        if not found.any():
            return []
        raw, anchors, scores = raw[found], self.anchors[found], scores[found]
        centre = raw[:, :2] / INPUT_SIDE + anchors
        half = raw[:, 2:4] / INPUT_SIDE / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1) * INPUT_SIDE
        points = (raw[:, 4:4 + 2 * KEYPOINTS].reshape(-1, KEYPOINTS, 2) / INPUT_SIDE + anchors[:, None]) * INPUT_SIDE
        palms = []
        for score, box, keypoints in weighted_nms(scores, boxes, points):
            # From the 192-px letterboxed square back to the image's pixels.
            box = ((box[0] - pad_x) / scale_x, (box[1] - pad_y) / scale_y, (box[2] - pad_x) / scale_x,
                   (box[3] - pad_y) / scale_y)
            palms.append(Palm(score, tuple(float(v) for v in box), (keypoints - [pad_x, pad_y]) / [scale_x, scale_y]))
        return palms
