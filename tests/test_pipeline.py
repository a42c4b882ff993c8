import numpy as np
import pytest

from keras_sign.data.catalog import scan_dataset
from keras_sign.data.pipeline import batches, channel_mean_std, decoded_images, epoch_seed, make_dataset


def _sample(n=24):
    table = scan_dataset("digits")
    picked = list(range(0, 400, 400 // n))[:n]
    return [table.root / table.records[i].path for i in picked], [table.labels[i] for i in picked]


def test_batches_have_the_model_input_contract():
    paths, labels = _sample()
    batches = list(make_dataset(paths, labels, 10, 40, 16).as_numpy_iterator())
    assert [b[0].shape for b in batches] == [(16, 40, 40, 3), (8, 40, 40, 3)]
    images, one_hot = batches[0]
    assert images.dtype == np.float32 and one_hot.dtype == np.float32
    assert 0 <= images.min() and images.max() <= 255 and images.max() > 1  # raw 0-255, not rescaled
    np.testing.assert_array_equal(one_hot.argmax(1), labels[:16])


def test_evaluation_order_is_fixed_and_each_epoch_is_a_function_of_seed_and_epoch():
    paths, labels = _sample()
    evaluation = make_dataset(paths, labels, 10, 32, 24)
    first = next(evaluation.as_numpy_iterator())[1].argmax(1)
    np.testing.assert_array_equal(first, labels)
    images = decoded_images(paths, labels, 32)

    def epoch(number, seed=1):
        s = epoch_seed(seed, number)
        return next(batches(images, 10, 24, shuffle_seed=s, augment_seed=s).as_numpy_iterator())

    epoch1, epoch2, epoch1_again = epoch(1), epoch(2), epoch(1)
    assert sorted(epoch1[1].argmax(1)) == sorted(labels)
    assert list(epoch1[1].argmax(1)) != list(epoch2[1].argmax(1))
    # a resumed run rebuilds epoch 1 and must see the same order and the same augmented pixels
    np.testing.assert_array_equal(epoch1[0], epoch1_again[0])
    np.testing.assert_array_equal(epoch1[1], epoch1_again[1])
    assert list(epoch(1, seed=2)[1].argmax(1)) != list(epoch1[1].argmax(1))


def test_augmentation_changes_pixels_but_not_range_or_labels():
    paths, labels = _sample(8)
    images = decoded_images(paths, labels, 48)
    plain = next(batches(images, 10, 8, shuffle_seed=5).as_numpy_iterator())
    augmented = next(batches(images, 10, 8, shuffle_seed=5, augment_seed=5).as_numpy_iterator())
    np.testing.assert_array_equal(plain[1], augmented[1])  # same seed, same shuffle
    assert np.abs(plain[0] - augmented[0]).mean() > 1.0
    assert 0 <= augmented[0].min() and augmented[0].max() <= 255


def test_channel_statistics_match_numpy():
    paths, labels = _sample(8)
    images = next(make_dataset(paths, labels, 10, 32, 8).as_numpy_iterator())[0]
    mean, std = channel_mean_std(paths, 32)
    np.testing.assert_allclose(mean, images.reshape(-1, 3).mean(0), rtol=1e-5)
    np.testing.assert_allclose(std, images.reshape(-1, 3).std(0), rtol=1e-4)


def test_center_crop_keeps_the_aspect_ratio_and_cuts_the_middle(tmp_path):
    from PIL import Image

    from keras_sign.data.decode import decode_and_resize

    # 160 x 80: left quarter red, middle half green, right quarter blue.
    pixels = np.zeros((80, 160, 3), np.uint8)
    pixels[:, :40, 0], pixels[:, 40:120, 1], pixels[:, 120:, 2] = 255, 255, 255
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    cropped = decode_and_resize(str(tmp_path / "wide.png"), 1, 56, center_crop=True).numpy()
    squashed = decode_and_resize(str(tmp_path / "wide.png"), 1, 56).numpy()
    assert cropped.shape == squashed.shape == (56, 56, 3)
    # shorter side 80 -> 64 (56 / 0.875), width 128; the central 56 columns are all green
    assert cropped[..., 1].min() == 255 and cropped[..., 0].max() == 0 and cropped[..., 2].max() == 0
    assert squashed[:, 0, 0].min() == 255 and squashed[:, -1, 2].min() == 255


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


def test_training_batches_are_mixed_only_when_asked():
    paths, labels = _sample(8)
    images = decoded_images(paths, labels, 32)
    plain = next(batches(images, 10, 8, shuffle_seed=3, augment_seed=3).as_numpy_iterator())
    mixed = next(batches(images, 10, 8, shuffle_seed=3, augment_seed=3, mix="mixup").as_numpy_iterator())
    assert set(np.unique(plain[1])) == {0.0, 1.0}
    assert (mixed[1].max(1) < 1).any()  # some labels are shares of two classes
    np.testing.assert_allclose(mixed[1].sum(1), 1.0, rtol=1e-6)
    assert ((mixed[1] > 0).sum(1) <= 2).all()  # each a blend of two photos at most
    assert (mixed[1][np.arange(8), plain[1].argmax(1)] > 0).all()  # with the photo's own class among them


def test_a_pipeline_over_epochs_gives_each_epoch_the_batches_of_its_own_seed():
    from keras_sign.data.pipeline import epochs_of_batches

    paths, labels = _sample(12)
    images = decoded_images(paths, labels, 32)
    options = {"num_classes": 10, "batch_size": 5, "augment_policy": "strong", "mix": "cutmix"}
    together = list(epochs_of_batches(images, 7, range(3, 6), **options).as_numpy_iterator())
    assert len(together) == 9  # three epochs of 5 + 5 + 2 images
    for number, epoch in enumerate(range(3, 6)):
        s = epoch_seed(7, epoch)
        alone = list(batches(images, shuffle_seed=s, augment_seed=s, **options).as_numpy_iterator())
        for (x, y), (x_alone, y_alone) in zip(together[3 * number:3 * number + 3], alone):
            np.testing.assert_array_equal(x, x_alone)
            np.testing.assert_array_equal(y, y_alone)
