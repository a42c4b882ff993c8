"""`keras-sign hands`: what the hand stage finds, one row per photo (or video frame), as a table, CSV or JSON lines.

    keras-sign hands photo.jpg my_photos/ --draw drawn/
    keras-sign hands clip.mp4 --format jsonl --out hands.jsonl
"""

import json

from keras_sign.errors import KerasSignError
from keras_sign.tables import rows_text

FORMATS = ("table", "csv", "jsonl")
MIN_SIDE = 32  # pixels: a smaller image holds too little of a hand for the models
COLUMNS = ("input", "hands", "handedness", "presence", "palm_score", "crop_x", "crop_y", "crop_side")


def too_small(width, height):
    """Why an image is too small for the hand stage, or None."""
    if min(width, height) < MIN_SIDE:
        return f"{width}x{height} is smaller than {MIN_SIDE} pixels on a side; the hand stage needs more"
    return None


def hand_row(name, hands, margin):
    """One row: the input (a path, or a path and a time for a video frame), the count of hands and the first
    one's handedness, presence, palm score and crop box; `landmarks` (pixels) for JSON lines."""
    row = {"input": name, "hands": len(hands)}
    if hands:
        hand = hands[0]
        x0, y0, side = hand.crop_box(margin)
        row.update(handedness=hand.handedness, presence=round(hand.presence, 3),
                   palm_score=None if hand.palm_score is None else round(hand.palm_score, 3),
                   crop_x=round(x0, 1), crop_y=round(y0, 1), crop_side=round(side, 1),
                   landmarks=[[round(float(v), 2) for v in point] for point in hand.landmarks])
    return row


def format_hand_rows(rows, output_format):
    if output_format == "jsonl":
        return "".join(json.dumps(row) + "\n" for row in rows)
    if output_format not in ("table", "csv"):
        raise KerasSignError(f"Unknown format '{output_format}'; choose one of {', '.join(FORMATS)}.")
    cells = [["" if row.get(column) is None else row[column] for column in COLUMNS] for row in rows]
    return rows_text(COLUMNS, cells, output_format)


def summary(rows):
    """`N of M inputs hold a hand (left L, right R)`."""
    found = [row for row in rows if row["hands"]]
    sides = {side: sum(row.get("handedness") == side for row in found) for side in ("left", "right")}
    return (f"{len(found)} of {len(rows)} input(s) hold a hand (left {sides['left']}, right {sides['right']})")
