"""Tiny, easy data for tests: an in-memory source with the data layer's contract (for training tests), and
stand-ins for the real sources: a folder of JPEG photos, and the rows TFDS would read for cats_vs_dogs."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import tensorflow as tf
from PIL import Image

FOLDER_CLASSES = ("Cat", "Dog")  # label 0: a bright bar, label 1: a bright square (toy_arrays)


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


def write_jpeg_folder(root: Path, per_class: int = 20, size: int = 48, seed: int = 0) -> Path:
    """root/Cat/*.jpg and root/Dog/*.jpg: toy_arrays' easy images, saved as JPEG photos."""
    images, labels = toy_arrays(2 * per_class, size, seed)
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        class_folder = root / FOLDER_CLASSES[label]
        class_folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(class_folder / f"{index:03d}.jpg", quality=95)
    return root


def numbered_tfds(count):
    """An as_dataset_fn for tfds.testing.mock_data: `count` examples, each a flat grey whose level is its
    index, sliced by TFDS's own ReadInstruction ('train[80%:90%]' -> examples 160-179 of 200)."""
    import tensorflow_datasets as tfds  # deferred: several seconds; only the TFDS tests need it

    def as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False, **kwargs):
        (instruction,) = tfds.core.ReadInstruction.from_spec(str(split)).to_absolute(
            {"train": SimpleNamespace(num_examples=count)})
        indices = list(range(count))[instruction.from_:instruction.to]
        examples = ({"image": np.full((40, 50, 3), index, np.uint8), "image/filename": f"{index}.jpg",
                     "label": index % 2} for index in indices)
        return tf.data.Dataset.from_generator(lambda: examples, output_signature={
            "image": tf.TensorSpec((None, None, 3), tf.uint8), "image/filename": tf.TensorSpec((), tf.string),
            "label": tf.TensorSpec((), tf.int64)})

    return as_dataset
