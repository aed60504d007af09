"""Batches for training and evaluation, gathered from uint8 arrays or from a split of the image cache.

The pipeline shuffles image indices, not images: each batch's indices are gathered from the images
in one call, so a memory-mapped data set is read a batch at a time and never copied whole into a
tensor (tf.data.Dataset.from_tensor_slices would hold a second full copy). A cached split is an
IndexedImages (the entry's memory map plus the split's rows): a batch maps its indices through
the rows and reads just those images, so picking a split never copies it either. A seeded shuffle of
the indices gives the same sequence of per-epoch orders on every run, and the lockstep model
feeds each batch to every back-end.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from gapdemo.data.splits import IndexedImages


def make_pipeline(images_uint8, labels, batch_size: int, shuffle: bool, seed: int) -> tf.data.Dataset:
    """Batches of (float32 images (B, S, S, 3) in [0, 1], float32 labels (B,)).

    Args:
        images_uint8: uint8 (N, S, S, 3): an array, a read-only np.memmap or an IndexedImages view;
            read a batch at a time, never copied whole.
        labels: (N,) class indices.
        batch_size: images per batch; the last batch of an epoch may be smaller.
        shuffle: reshuffle every epoch (each new iterator) in a seeded order; else keep N's order.
        seed: the shuffle's seed.
    """
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch size must be a positive integer, got {batch_size!r}")
    if not isinstance(images_uint8, (np.ndarray, IndexedImages)):
        images_uint8 = np.asarray(images_uint8)
    if images_uint8.dtype != np.uint8 or images_uint8.ndim != 4:
        raise ValueError(f"images must be uint8 (N, H, W, 3), got {images_uint8.dtype} {images_uint8.shape}")
    labels = np.asarray(labels, dtype=np.float32)
    if len(labels) != len(images_uint8):
        raise ValueError(f"{len(images_uint8)} images but {len(labels)} labels")
    image_shape = tuple(int(side) for side in images_uint8.shape[1:])

    def gather(batch_indices):
        # Sorted indices read the memory map front to back; the order inside a batch changes nothing
        # in training (losses and batch-norm statistics are means over the batch).
        ordered = np.sort(batch_indices)
        # An IndexedImages maps them through its rows (read in ascending order, returned in this one).
        return np.asarray(images_uint8[ordered]), labels[ordered]  # (B, S, S, 3) uint8, (B,) float32

    def load_batch(batch_indices):
        images, batch_labels = tf.numpy_function(gather, [batch_indices], (tf.uint8, tf.float32), stateful=False)
        images.set_shape((None, *image_shape))
        batch_labels.set_shape((None,))
        return tf.cast(images, tf.float32) / 255.0, batch_labels

    indices = tf.data.Dataset.range(len(labels))
    if shuffle:
        # The permutation depends only on the seed and the count, as it did when whole images were shuffled.
        indices = indices.shuffle(max(len(labels), 1), seed=seed, reshuffle_each_iteration=True)
    batches = indices.batch(batch_size).map(load_batch, num_parallel_calls=tf.data.AUTOTUNE)
    return batches.prefetch(tf.data.AUTOTUNE)


def without_autotuning(dataset):
    """dataset with tf.data's autotuning off: AUTOTUNE parallelism and buffers take fixed sizes.

    Deleting an autotuned iterator waits for the tuner's thread, up to a second or more; a fixed
    pipeline ends at once. Its map runs as many calls in parallel as the machine has cores, plenty
    for batches gathered from decoded uint8 arrays (thousands of images/s against ~100 trained).
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)
