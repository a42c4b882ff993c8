import numpy as np

from keras_sign.data.catalog import scan_dataset
from keras_sign.data.pipeline import channel_mean_std, make_dataset


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


def test_evaluation_order_is_fixed_and_training_order_is_shuffled_per_epoch():
    paths, labels = _sample()
    evaluation = make_dataset(paths, labels, 10, 32, 24)
    first = next(evaluation.as_numpy_iterator())[1].argmax(1)
    np.testing.assert_array_equal(first, labels)
    training = make_dataset(paths, labels, 10, 32, 24, training=True, seed=1)
    epoch1, epoch2 = (next(training.as_numpy_iterator())[1].argmax(1) for _ in range(2))
    assert sorted(epoch1) == sorted(labels) and list(epoch1) != list(epoch2)


def test_augmentation_changes_pixels_but_not_range_or_labels():
    paths, labels = _sample(8)
    plain = next(make_dataset(paths, labels, 10, 48, 8, training=True, seed=5).as_numpy_iterator())
    augmented = next(make_dataset(paths, labels, 10, 48, 8, training=True, augment=True, seed=5).as_numpy_iterator())
    np.testing.assert_array_equal(plain[1], augmented[1])  # same seed, same shuffle
    assert np.abs(plain[0] - augmented[0]).mean() > 1.0
    assert 0 <= augmented[0].min() and augmented[0].max() <= 255


def test_channel_statistics_match_numpy():
    paths, labels = _sample(8)
    images = next(make_dataset(paths, labels, 10, 32, 8).as_numpy_iterator())[0]
    mean, std = channel_mean_std(paths, 32)
    np.testing.assert_allclose(mean, images.reshape(-1, 3).mean(0), rtol=1e-5)
    np.testing.assert_allclose(std, images.reshape(-1, 3).std(0), rtol=1e-4)
