"""A tiny, easy, in-memory data source with the data layer's contract (for training tests)."""

from types import SimpleNamespace

import numpy as np
import tensorflow as tf


def toy_arrays(count, image_size=32, seed=0):
    """Class 1 has a bright square somewhere; class 0 a bright horizontal bar: easy to learn."""
    rng = np.random.default_rng(seed)
    images = (rng.random((count, image_size, image_size, 3)) * 60).astype(np.uint8)
    labels = np.arange(count) % 2
    for index, label in enumerate(labels):
        row, column = rng.integers(2, image_size - 10, size=2)
        if label:
            images[index, row:row + 8, column:column + 8] = 255
        else:
            images[index, row + 3:row + 5, column:column + 8] = 255
    return images, labels


def toy_pipeline(images, labels, batch_size, shuffle, seed=0):
    dataset = tf.data.Dataset.from_tensor_slices((images, labels.astype("float32")))
    if shuffle:
        dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).map(lambda x, y: (tf.cast(x, tf.float32) / 255.0, y))


class ToyInfo(SimpleNamespace):
    def to_dict(self):
        return dict(self.__dict__)


def _corrupt_batch(images):
    raise OSError("image file is truncated (a corrupt batch)")


def toy_loader(train_count=64, validation_count=32, fail_mid_run=False):
    """A data_loader for TrainingJob; fail_mid_run makes the training pipeline raise mid-epoch."""

    def load(data_config, batch_size, progress=None):
        size = data_config.image_size
        train_images, train_labels = toy_arrays(train_count, size, seed=data_config.seed)
        val_images, val_labels = toy_arrays(validation_count, size, seed=data_config.seed + 1)
        train = toy_pipeline(train_images, train_labels, batch_size, True, data_config.seed)
        if fail_mid_run:
            train = train.map(lambda x, y: (tf.ensure_shape(tf.numpy_function(_corrupt_batch, [x], tf.float32), x.shape), y))
        if progress:
            progress("toy data ready", 1.0)
        info = ToyInfo(dataset="toy", class_names=["cat", "dog"], image_size=size,
                       splits={"train": train_count, "validation": validation_count, "test": 0})
        return SimpleNamespace(train=train, validation=toy_pipeline(val_images, val_labels, batch_size, False),
                               test=None, info=info, validation_images=val_images, validation_labels=val_labels)

    return load
