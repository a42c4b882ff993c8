"""The hand landmark model: 21 landmarks, presence and handedness of the hand in a region of interest.

    reading = LandmarkModel(model_file).read(rgb_image, roi)

The region (`keras_sign.hands.geometry.Roi`, turned so that the hand points up) is warped to 224 x 224
with its border replicated, scaled to [0, 1] and run. The model gives the 21 landmarks in the warped
view's pixels (x, y, and a depth z relative to the wrist in the same units), the hand's presence
(a probability: below 0.5 there is no hand) and handedness (a probability of "Left" for a mirrored,
selfie-camera image, so of the person's right hand in an ordinary photo), and 21 world landmarks in
metres. The landmarks are mapped back into the image by the region's own rotation and scale.
(modules/hand_landmark/hand_landmark_cpu.pbtxt.)
"""

import dataclasses

import numpy as np

INPUT_SIDE = 224
MIN_PRESENCE = 0.5
Z_SCALE = 0.4  # MediaPipe's normalize_z: the depth of the training data, as a share of the view's width
COUNT = 21


@dataclasses.dataclass(frozen=True)
class LandmarkReading:
    """What the landmark model read in one region: presence, handedness, landmarks `(21, 3)` in image pixels
    (z in pixels of the same scale) and world landmarks `(21, 3)` in metres."""

    presence: float
    right_hand: float  # probability that this is the person's right hand (in an unmirrored image)
    landmarks: np.ndarray
    world_landmarks: np.ndarray


class LandmarkModel:
    """MediaPipe's hand landmark model in LiteRT; see the module docstring."""

    def __init__(self, model, threads=None):
        self.interpreter = model(threads)
        self.input = self.interpreter.get_input_details()[0]["index"]
        outputs = {detail["name"]: detail["index"] for detail in self.interpreter.get_output_details()}
        # Identity: landmarks (63), Identity_1: presence, Identity_2: handedness, Identity_3: world landmarks.
        self.landmarks, self.presence, self.handedness, self.world = (outputs[name] for name in (
            "Identity", "Identity_1", "Identity_2", "Identity_3"))

    def read(self, image, roi):
        """The `LandmarkReading` of `roi` in an RGB uint8 image."""
        import cv2

        view = cv2.warpAffine(image, roi.warp_matrix(INPUT_SIDE), (INPUT_SIDE, INPUT_SIDE), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        self.interpreter.set_tensor(self.input, (view.astype(np.float32) / 255.0)[None])
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self.landmarks)[0].reshape(COUNT, 3) / INPUT_SIDE
        points = roi.to_image(raw[:, :2])
        depth = raw[:, 2:3] / Z_SCALE * roi.size
        return LandmarkReading(
            presence=float(self.interpreter.get_tensor(self.presence)[0, 0]),
            right_hand=float(self.interpreter.get_tensor(self.handedness)[0, 0]),
            landmarks=np.concatenate([points, depth], axis=1),
            world_landmarks=self.interpreter.get_tensor(self.world)[0].reshape(COUNT, 3).copy(),
        )
