"""A fusion model's training batches (`keras_sign.models.fusion`): each photo's hand square beside its hand's
landmark features, shuffled and augmented with the seed `epoch_seed(seed, epoch)` alone, so a resumed run sees
the batches an uninterrupted one would have.

The squares come from the split's image cache (memory or disk) decoded with each photo's row number as its
label; each batch then gathers its rows' features and classes. The squares are augmented as a CNN's are
(`keras_sign.data.augment`), the features as a landmark model's (`keras_sign.data.landmarks`), each by its
own draw: both are changes that keep the sign what it is, so they need not agree.
"""

import functools

import numpy as np

from keras_sign.data.decode import import_tensorflow
from keras_sign.data.landmarks import augment_features
from keras_sign.data.pipeline import augmenter, epoch_seed, shuffled_batches


def fusion_batches(squares, features, labels, num_classes, batch_size, seed=None, augment=False,
                   drop_remainder=False, augment_policy="light", background=False):
    """Batches of `((float32 squares 0-255, float32 features), one-hot labels)`.

    `squares` is the split's image cache whose labels are the rows' numbers (0 to n - 1); `features` and
    `labels` the rows' landmark features and classes. In order (`seed` None), or shuffled (and with
    `augment`, augmented) by `seed`."""
    tf = import_tensorflow()
    features = np.asarray(features, np.float32)
    if seed is not None and augment:
        features = augment_features(features, np.random.default_rng(seed))
    features, labels = tf.constant(features), tf.constant(np.asarray(labels, np.int64))

    def join(images, rows):
        rows = tf.cast(rows, tf.int64)
        return (tf.cast(images, tf.float32), tf.gather(features, rows)), tf.one_hot(tf.gather(labels, rows),
                                                                                    num_classes)

    ds = shuffled_batches(squares, batch_size, seed, drop_remainder).map(join, num_parallel_calls=tf.data.AUTOTUNE)
    if seed is not None and augment:
        augment_images = augmenter(augment_policy, background, "none", None)

        def augmented(index, batch):
            (images, landmarks), one_hot = batch
            images, one_hot = augment_images(tf.stack([tf.constant(seed, tf.int64), index]), images, one_hot)
            return (images, landmarks), one_hot

        ds = ds.enumerate().map(augmented, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def epochs_of_fusion_batches(squares, features, labels, seed, epochs, augment=True, **options):
    """The training batches of `epochs` (a range), one epoch after another (`fusion_batches`' `options`)."""
    each = [fusion_batches(squares, features, labels, seed=epoch_seed(seed, epoch), augment=augment, **options)
            for epoch in epochs]
    return functools.reduce(lambda dataset, more: dataset.concatenate(more), each)
