"""`keras_sign.data.augment`: the augmentation policies, new backdrops, mixup and cutmix, stateless and seeded."""

import numpy as np
import pytest


def test_strong_augmentation_and_new_backdrops_are_seeded_and_keep_the_hand():
    import tensorflow as tf

    from keras_sign.data.augment import _new_backgrounds, augment_batch

    # A bright "hand" square on black, as Massey's photos are.
    image = np.zeros((4, 32, 32, 3), np.float32)
    image[:, 8:24, 8:24] = [200, 150, 120]
    seed = tf.constant([3, 1], tf.int64)
    composited = _new_backgrounds(tf.constant(image), tf.constant([[0.5, 0.5]] * 4), seed).numpy()
    np.testing.assert_array_equal(composited[:, 10:22, 10:22], image[:, 10:22, 10:22])  # the hand is kept
    assert composited[:, :6, :6].mean() > 20  # the black backdrop is not black any more
    assert len({float(c[:6, :6].mean()) for c in composited}) == 4  # a different backdrop per image

    first = augment_batch(tf.constant(image), seed, "strong", background=True).numpy()
    again = augment_batch(tf.constant(image), seed, "strong", background=True).numpy()
    other = augment_batch(tf.constant(image), seed + 1, "strong", background=True).numpy()
    np.testing.assert_array_equal(first, again)  # stateless: a resumed epoch sees the same pixels
    assert np.abs(first - other).mean() > 1 and 0 <= first.min() and first.max() <= 255


def test_colour_policy_is_the_light_geometry_with_a_gain_per_channel_and_a_brightness_per_image():
    import tensorflow as tf

    from keras_sign.data.augment import augment_batch

    image = np.random.default_rng(0).uniform(80, 170, (6, 24, 24, 3)).astype(np.float32)  # never clipped
    seed = tf.constant([5, 2], tf.int64)
    light = augment_batch(tf.constant(image), seed, "light").numpy()
    colour = augment_batch(tf.constant(image), seed, "colour").numpy()
    gains = []
    for i in range(len(image)):
        for c in range(3):
            gain, offset = np.polyfit(light[i, ..., c].ravel(), colour[i, ..., c].ravel(), 1)
            np.testing.assert_allclose(gain * light[i, ..., c] + offset, colour[i, ..., c], atol=1e-2)
            assert 0.9 - 1e-4 <= gain <= 1.1 + 1e-4 and abs(offset) <= 25 * 1.1 + 1e-3
            gains.append(gain)
    assert np.std(gains) > 0.01  # a colour cast, not one gain for all


def _two_colour_batch():
    """Four flat images, each its own colour, with one-hot labels of four classes."""
    images = np.repeat(np.array([10.0, 80.0, 150.0, 220.0], np.float32)[:, None, None, None], 32, 1)
    return np.repeat(np.repeat(images, 32, 2), 3, 3), np.eye(4, dtype=np.float32)


def test_mixup_blends_each_image_with_its_neighbour_by_the_labels_share():
    import tensorflow as tf

    from keras_sign.data.augment import mix_batch

    images, labels = _two_colour_batch()
    seed = tf.constant([7, 0], tf.int64)
    mixed, soft = (t.numpy() for t in mix_batch(tf.constant(images), tf.constant(labels), seed, "mixup", 1.0))
    np.testing.assert_allclose(soft.sum(1), 1.0, rtol=1e-6)
    lam = soft[np.arange(4), np.arange(4)]  # each image's own class keeps the share lam
    partner = np.roll(np.arange(4), 1)
    np.testing.assert_allclose(soft[np.arange(4), partner], 1 - lam, rtol=1e-5)
    expected = lam * images[:, 0, 0, 0] + (1 - lam) * images[partner, 0, 0, 0]
    np.testing.assert_allclose(mixed[:, 5, 5, 0], expected, rtol=1e-5)
    again = mix_batch(tf.constant(images), tf.constant(labels), seed, "mixup", 1.0)[0].numpy()
    np.testing.assert_array_equal(mixed, again)  # stateless: a resumed epoch mixes the same way
    other = mix_batch(tf.constant(images), tf.constant(labels), seed + 1, "mixup", 1.0)[1].numpy()
    assert not np.allclose(other, soft)
    assert mix_batch(images, labels, seed, "none")[0] is images


def test_cutmix_labels_are_the_share_of_pixels_each_photo_shows():
    import tensorflow as tf

    from keras_sign.data.augment import mix_batch

    images, labels = _two_colour_batch()
    for step in range(5):
        seed = tf.constant([11, step], tf.int64)
        mixed, soft = (t.numpy() for t in mix_batch(tf.constant(images), tf.constant(labels), seed, "cutmix"))
        for i, partner in enumerate(np.roll(np.arange(4), 1)):
            own = (mixed[i, ..., 0] == images[i, 0, 0, 0]).mean()
            assert set(np.unique(mixed[i])) <= {images[i, 0, 0, 0], images[partner, 0, 0, 0]}  # pasted, not blended
            assert soft[i, i] == pytest.approx(own, abs=1e-6) and soft[i, partner] == pytest.approx(1 - own, abs=1e-6)
