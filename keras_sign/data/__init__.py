"""Data station: named datasets, folder scanning, splits and tf.data pipelines."""
