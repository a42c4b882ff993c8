"""Learning-rate schedules by optimizer step: constant, cosine or step decay, after an optional linear warm-up.

    keras-sign train --schedule cosine --warmup-epochs 2 --lr 1e-3

The schedule is a Keras serializable object inside the optimizer, so it is
saved with every checkpoint and a resumed run picks up the rate where it was.
"""

import math

import keras
from keras import ops

STEP_DECAY_AT = (0.5, 0.75)  # fractions of the post-warm-up steps where `step` divides the rate by 10
STEP_DECAY_FACTOR = 0.1


@keras.saving.register_keras_serializable(package="keras_sign")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`peak` reached linearly over `warmup_steps`, then held (`constant`), cosine-annealed to 0 or step-decayed.

    Not Keras' CosineDecay(peak / W, T - W, warmup_target=peak, warmup_steps=W): its ramp is a step late (W=4: 4.4e-4
    at step 1, not 5e-4; W - 1 warm-up steps instead shift the decay a step early), PiecewiseConstantDecay has no
    warm-up, and saved optimizers name this class.

    Example:
        >>> schedule = WarmupSchedule("cosine", 1e-3, total_steps=100, warmup_steps=10)
        >>> round(float(schedule(9)), 6), round(float(schedule(100)), 6)
        (0.001, 0.0)
    """

    def __init__(self, kind, peak, total_steps, warmup_steps=0):
        self.kind = kind
        self.peak = peak
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup = float(self.warmup_steps)
        # Progress through the post-warm-up steps, 0 -> 1.
        progress = ops.clip((step - warmup) / max(self.total_steps - warmup, 1.0), 0.0, 1.0)
        if self.kind == "cosine":
            rate = 0.5 * self.peak * (1.0 + ops.cos(math.pi * progress))
        elif self.kind == "step":
            passed = sum(ops.cast(progress >= point, "float32") for point in STEP_DECAY_AT)
            rate = self.peak * ops.power(STEP_DECAY_FACTOR, passed)
        else:
            rate = ops.convert_to_tensor(self.peak, "float32")
        if self.warmup_steps:
            # Step 0 already trains at peak / warmup, so no step is wasted at rate 0.
            rate = ops.where(step < warmup, self.peak * (step + 1.0) / warmup, rate)
        return rate

    def get_config(self):
        return {"kind": self.kind, "peak": self.peak, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps}
