"""What one call of a model reads: one array (an image model's pixels `(n, h, w, 3)`, a landmark model's
features `(n, 63)`), or for a fusion model the tuple of both, in `keras_sign.models.fusion.INPUTS` order.
These few functions let every batching loop, runtime and exporter treat the two alike.
"""

import numpy as np


def parts(inputs):
    """The arrays of `inputs`: the tuple's, or the one array."""
    return inputs if isinstance(inputs, tuple) else (inputs,)


def from_parts(arrays):
    """`parts`' inverse: a tuple for several arrays, else the one array."""
    arrays = tuple(arrays)
    return arrays if len(arrays) > 1 else arrays[0]


def is_inputs(value):
    """Whether `value` is inputs (an array, or a tuple of arrays) rather than an iterable of batches of them."""
    return isinstance(value, np.ndarray) or (isinstance(value, tuple) and
                                             all(isinstance(part, np.ndarray) for part in value))


def as_float32(inputs):
    """`inputs` as a Keras model's `predict_on_batch` takes them: a float32 array, or a list of them."""
    arrays = [np.asarray(part, dtype=np.float32) for part in parts(inputs)]
    return arrays if len(arrays) > 1 else arrays[0]


def count(inputs):
    """The number of examples in `inputs`."""
    return len(parts(inputs)[0])


def rows(inputs, start, stop=None):
    """Examples `start` to `stop - 1` of `inputs` (`stop` None: from 0 to `start`)."""
    start, stop = (0, start) if stop is None else (start, stop)
    return from_parts(np.asarray(part)[start:stop] for part in parts(inputs))


def joined(batches):
    """Batches of inputs joined into one."""
    return from_parts(np.concatenate(column) for column in zip(*(parts(batch) for batch in batches)))


def stacked(examples):
    """Single examples (arrays, or tuples of arrays) stacked into one batch."""
    return from_parts(np.stack(column) for column in zip(*(parts(example) for example in examples)))


def padded(inputs, size):
    """`inputs` with all-zero examples added up to `size`."""
    return from_parts(np.concatenate([part, np.zeros((size - len(part), *part.shape[1:]), part.dtype)])
                      if len(part) < size else part for part in map(np.asarray, parts(inputs)))


def one_by_one(inputs, names):
    """Each example as a batch of one in float32: a TFLite converter's representative dataset. A model of several
    inputs gets them by `names` (the signature's, which are the Keras model's input names): the converter's own
    order of the inputs need not be the model's."""
    for index in range(count(inputs)):
        arrays = [np.asarray(part[index], np.float32)[None] for part in parts(inputs)]
        yield dict(zip(names, arrays)) if len(arrays) > 1 else arrays
