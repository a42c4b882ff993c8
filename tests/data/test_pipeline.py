"""`keras_sign.data.pipeline`: batches as the model takes them, each epoch a function of the seed and the epoch,
and augmentation and mixing only when asked."""

import numpy as np

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
