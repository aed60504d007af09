"""The Cats vs Dogs source: the real tensorflow_datasets builder, prepared offline from the manual archive.

TFDS prepares the data set once (download or <data dir>/downloads/manual/kagglecatsanddogs_5340.zip,
checksum verified, files without a JFIF header dropped: exactly 1,738 of them in the original);
this module then decodes its three slices at the image size, once, into one image cache entry
(train, validation, test in that order); the training cap takes the train slice's first images
from it, as take() did, so another cap opens the entry instead of decoding again. What goes wrong in
the field gets one sentence each: no network, a stale copy from an older TFDS, a damaged or
re-packed archive, a half-prepared or damaged prepared copy. Served work never prepares (downloads):
it reads a copy the operator prepared, and its errors name no path (gapdemo.data.audience).
"""

from __future__ import annotations

import hashlib
import pathlib
import re
import threading
import urllib.error
import urllib.request

import numpy as np

from gapdemo.config import CLASS_NAMES, DataConfig
from gapdemo.data.audience import hidden_in_served_work, operator_hint, work_is_served
from gapdemo.data.cache import ENTRY_PART, CacheRequest, cache_root, entry_key, entry_label
from gapdemo.data.cache_writer import load_or_decode
from gapdemo.data.checks import DataError
from gapdemo.data.roots import DEFAULT_TFDS_DIR
from gapdemo.data.splits import SPLITS, DecodedSource, Progress, cap
from gapdemo.data.tfds_folder import not_prepared_sentence

TFDS_SLICES = {"train": "train[:80%]", "validation": "train[80%:90%]", "test": "train[90%:]"}
CATS_VS_DOGS_URL = ("https://download.microsoft.com/download/3/E/1/"
                    "3E1C3F21-ECDB-4869-8368-6DEBA77B919F/kagglecatsanddogs_5340.zip")
CATS_VS_DOGS_ARCHIVE = "kagglecatsanddogs_5340.zip"
NON_JFIF_FILES = 1738  # files of the original archive that the builder drops, and insists on finding
REACHABILITY_TIMEOUT_S = 6.0  # an offline machine must get its answer well within 15 s
PROGRESS_EVERY = 100  # images between two progress reports
# Preparing names the archive's and the data directory's paths; served work never prepares, but should it:
PREPARATION_FAILED_PUBLIC = f"Preparing Cats vs Dogs failed; {operator_hint('cats_vs_dogs')}."


def load_cats_vs_dogs(config: DataConfig, report: Progress) -> DecodedSource:
    """Prepare Cats vs Dogs if needed (never in served work), then open its cache entry or decode its three slices."""
    import tensorflow_datasets as tfds  # deferred: it imports TensorFlow (seconds); only this source needs it

    report("Opening Cats vs Dogs", 0.0)
    builder = tfds.builder("cats_vs_dogs", data_dir=config.data_dir)
    if not builder.is_prepared():
        if work_is_served():  # the gate asked already; the copy may have gone since
            raise DataError(not_prepared_sentence(config.data_dir or DEFAULT_TFDS_DIR))
        prepare(builder)
    decoded = load_or_decode(cache_request(config, builder),
                             lambda writer: _decode(builder, config.image_size, writer, report), report)
    return decoded.pick(slice_rows(decoded.layout["slice_counts"], config.train_size))


def slice_rows(slice_counts: dict, train_size: int | None) -> dict[str, np.ndarray]:
    """Each split's rows of the entry: its slice, in order; train capped to its first train_size images."""
    rows, start = {}, 0
    for name in SPLITS:
        count = int(slice_counts[name])
        rows[name] = np.arange(start, start + (cap(count, train_size) if name == "train" else count))
        start += count
    return rows


def cache_request(config: DataConfig, builder) -> CacheRequest:
    """The cache entry of the slices at config's image size; the prepared files' sizes and times are part of the key."""
    prepared = _prepared_fingerprint(pathlib.Path(builder.data_dir))
    settings = {"source": "cats_vs_dogs", "builder": builder.info.full_name, "data_dir": str(builder.data_dir),
                "image_size": config.image_size, "slices": TFDS_SLICES}
    # No prepared files on disk (tfds.testing.mock_data serves made-up images): nothing worth caching.
    return CacheRequest(root=cache_root(config.cache_dir) if prepared else None,
                        label=entry_label("cats_vs_dogs", f"{config.image_size}px"),
                        key=entry_key({**settings, "prepared": prepared}), variant=entry_key(settings))


def prepared_cache_request(config: DataConfig) -> CacheRequest | None:
    """config's cache request when Cats vs Dogs is prepared in its data dir, else None (nothing to cache yet)."""
    import tensorflow_datasets as tfds  # deferred: it imports TensorFlow (seconds); only this source needs it

    builder = tfds.builder("cats_vs_dogs", data_dir=config.data_dir)
    return cache_request(config, builder) if builder.is_prepared() else None


def _prepared_fingerprint(data_dir: pathlib.Path) -> str:
    try:
        entries = sorted((path.name, path.stat().st_size, path.stat().st_mtime_ns) for path in data_dir.iterdir())
    except OSError:
        return ""
    return hashlib.sha256(repr(entries).encode()).hexdigest() if entries else ""


def _decode(builder, size: int, writer, report: Progress):
    """Resize every slice's images with TensorFlow (in parallel) into writer, slice after slice.

    Returns:
        (class names, no skipped files, layout {"slice_counts": {split: images}}).
    """
    import tensorflow as tf  # deferred: seconds to import; only this source needs it

    def resize(image, label):
        resized = tf.image.resize(image, (size, size), method="bilinear")  # float32 (S, S, 3)
        return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8), label

    expected = {name: _expected_count(builder, TFDS_SLICES[name]) for name in SPLITS}
    known = None if None in expected.values() else sum(expected.values())
    images = writer.open_split(ENTRY_PART, known, size)  # unknown (mock data): in memory only
    slice_counts = {}
    for index, name in enumerate(SPLITS):
        before = images.count
        try:
            dataset = builder.as_dataset(split=TFDS_SLICES[name], as_supervised=True, shuffle_files=False)
            for image, label in dataset.map(resize, num_parallel_calls=tf.data.AUTOTUNE).as_numpy_iterator():
                images.append(image, label)
                done = images.count - before
                if done % PROGRESS_EVERY == 0:
                    fraction = min(done / expected[name], 1.0) if expected[name] else 0.5
                    report(f"Decoding Cats vs Dogs {name} {done}", (index + fraction) / len(SPLITS))
        except (tf.errors.OpError, OSError, AssertionError) as error:
            raise DataError(f"The prepared Cats vs Dogs in {builder.data_dir} is incomplete or damaged "
                            f"({_first_line(error)}); delete that folder and load again to prepare it afresh "
                            "from the archive.",
                            "The prepared Cats vs Dogs is incomplete or damaged, so the operator must prepare it "
                            f"afresh; {operator_hint('cats_vs_dogs')}.") from hidden_in_served_work(error)
        slice_counts[name] = images.count - before
    return list(CLASS_NAMES), [], {"slice_counts": slice_counts}


def _expected_count(builder, split_slice: str) -> int | None:
    try:
        return int(builder.info.splits[split_slice].num_examples)
    except Exception:  # split sizes unknown until prepared (or under tfds.testing.mock_data)
        return None


# --- preparing ---------------------------------------------------------------------------------


def prepare(builder) -> None:
    """Prepare Cats vs Dogs from the manual archive or a download, or fail fast with one sentence."""
    import tensorflow_datasets as tfds  # deferred: it imports TensorFlow (seconds); only this source needs it

    archive = manual_archive(builder)
    if not archive.exists() and not host_reachable(CATS_VS_DOGS_URL, REACHABILITY_TIMEOUT_S):
        raise DataError("Cats vs Dogs is not prepared and its download server cannot be reached; "
                        + _stale_copies(builder) + offline_instructions(builder.data_dir_root) + ".",
                        PREPARATION_FAILED_PUBLIC)
    # With the archive at hand, prepare from it: asking Google's storage for a prepared copy first
    # would hang on an offline machine.
    options = tfds.download.DownloadConfig(try_download_gcs=not archive.exists())
    try:
        builder.download_and_prepare(download_config=options)  # TFDS draws its own progress bar
    except Exception as error:
        raise DataError(explain_preparation_error(error, builder, archive),
                        PREPARATION_FAILED_PUBLIC) from hidden_in_served_work(error)


def explain_preparation_error(error: Exception, builder, archive: pathlib.Path) -> str:
    """One sentence for a failed download_and_prepare: a damaged archive, a re-packed one, or else."""
    text = str(error)
    if type(error).__name__ == "NonMatchingChecksumError":
        expected = _registered_size(builder)
        found = archive.stat().st_size if archive.exists() else None
        if found is not None:
            sizes = f"{found:,} bytes" + (f" where the original has {expected:,}" if expected else "")
            return (f"The archive {archive} is not the original ({sizes}, and its checksum differs): a download "
                    "cut short leaves such a file; download it again and replace it, or "
                    + _folder_alternative() + ".")
        return ("The downloaded Cats vs Dogs archive arrived damaged (its checksum differs); load again to "
                "download it afresh, or " + offline_instructions(builder.data_dir_root) + ".")
    count = re.search(r"Expected \d+ corrupt images, but found (\d+)", text)
    if count:
        return (f"The archive {archive} holds {int(count.group(1)):,} files without a JFIF header where the TFDS "
                f"builder insists on exactly {NON_JFIF_FILES:,}, so it is not the original Microsoft archive; "
                + _folder_alternative() + ", which skips unreadable files.")
    return (f"Preparing Cats vs Dogs failed ({_first_line(error)}); " + _stale_copies(builder)
            + offline_instructions(builder.data_dir_root) + ".")


def manual_archive(builder) -> pathlib.Path:
    """Where TFDS looks for the archive before downloading it."""
    return pathlib.Path(builder.data_dir_root) / "downloads" / "manual" / CATS_VS_DOGS_ARCHIVE


def offline_instructions(data_dir_root) -> str:
    manual_dir = pathlib.Path(data_dir_root) / "downloads" / "manual"
    return (f"place the original {CATS_VS_DOGS_ARCHIVE} (from the Microsoft download page) in {manual_dir}/ "
            "and TFDS will verify its checksum and prepare it, or " + _folder_alternative())


def _folder_alternative() -> str:
    return ("extract it and use the folder data set on its PetImages/ folder "
            "(--dataset folder --data-dir PATH/PetImages)")


def _stale_copies(builder) -> str:
    """'Found ... prepared by an older TFDS ...; ' when other versions or interrupted preparations lie beside ours."""
    dataset_dir = pathlib.Path(builder.data_dir).parent
    try:
        others = sorted(path.name for path in dataset_dir.iterdir() if path.name != pathlib.Path(builder.data_dir).name)
    except OSError:
        return ""
    versions = [name for name in others if re.fullmatch(r"\d+\.\d+\.\d+", name)]
    interrupted = [name for name in others if name.startswith("incomplete.")]
    parts = []
    if versions:
        parts.append(f"the copy in {dataset_dir} is version {', '.join(versions)}, prepared by another TFDS, and this "
                     f"TFDS reads only {builder.version}, which must be prepared again (the old copy can be deleted)")
    if interrupted:
        parts.append(f"{len(interrupted)} interrupted preparation(s) left {dataset_dir}/{interrupted[0]}, "
                     "which can be deleted")
    return "; ".join(parts) + ("; " if parts else "")


def _registered_size(builder) -> int | None:
    try:
        return int(type(builder).url_infos[CATS_VS_DOGS_URL].size)
    except Exception:  # no checksums file for this builder
        return None


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:300]


def host_reachable(url: str, timeout_s: float) -> bool:
    """True when url's server answers a HEAD request within timeout_s (proxies honoured)."""
    answered = threading.Event()

    def probe():
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout_s).close()
            answered.set()
        except urllib.error.HTTPError:  # the server answered, even if with an error status
            answered.set()
        except Exception:  # DNS failure, refused, timed out, proxy down: all mean no download
            pass

    # A daemon thread bounds the wait: DNS look-ups ignore the socket timeout and can hang.
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return answered.is_set()
