"""The `keras-sign` command line. Each command is thin and calls one function of its station.

    keras-sign train                       # MobileNetV3-Small on the embedded digits sample
    keras-sign train --data-dir ../shared/data/massey_asl_hands --split signer --epochs 1
    keras-sign evaluate runs/digits-mobilenetv3_small-20261125-120000
    keras-sign compare runs/digits-resnet18-20261125-120000 runs/digits-mobilenetv3_small-20261125-120000
    keras-sign data validate PATH
    keras-sign predict RUN photo.jpg my_photos/
    keras-sign transcribe RUN clip.mp4 --reference "HELLO"
    keras-sign crossval --config configs/massey.yaml --out crossval/massey
    keras-sign calibrate RUN
    keras-sign demo exports/massey-tflite-none

One module per command group: `train` (train, crossval, sweep, reproduce), `analyse` (evaluate,
calibrate, compare), `ship` (export, ensemble, benchmark), `spell` (predict, transcribe, demo) and
`data` (data ..., models), `hands`; `main` holds the group itself, `options` the options made from
`keras_sign.config.TrainConfig`.
"""

from keras_sign.cli import analyse, data, hands, ship, spell, train  # noqa: F401  (each adds its commands to `cli`)
from keras_sign.cli.main import cli, main
from keras_sign.cli.options import FINITE_FLOAT
from keras_sign.cli.spell import SKIPPED_EXIT

__all__ = ["FINITE_FLOAT", "SKIPPED_EXIT", "cli", "main"]
