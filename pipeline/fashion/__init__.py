"""Fashion-MNIST: IDX reading, raw tf.Examples and the TF Transform preprocessing_fn."""

from __future__ import annotations

import contextlib
import gzip
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import tensorflow as tf
from apache_beam.io.filesystem import BeamIOError, CompressionTypes
from apache_beam.io.filesystems import FileSystems

NAME = "fashion"
CLASS_NAMES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
HEIGHT = WIDTH = 28
IMAGE_BYTES = HEIGHT * WIDTH
IMAGE = "image"  # raw: 784 bytes, row-major uint8 pixels (one bytes value per example)
LABEL = "label"
IMAGE_XF = "image"  # transformed: float32 [28, 28] in [0, 1]
LABEL_XF = "label"

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
# (images file, labels file) per source split of the official distribution.
SOURCE_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "t10k": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


class IdxFormatError(ValueError):
    """The file is not a Fashion-MNIST IDX file (wrong magic number, dimensions or compression)."""


@dataclass(frozen=True)
class IdxHeader:
    count: int
    item_shape: tuple[int, ...]


def source_paths(directory: str) -> dict[str, tuple[str, str]]:
    """{source split: (images path, labels path)} under `directory`, on any Beam file system."""
    return {
        source: (FileSystems.join(directory, images), FileSystems.join(directory, labels))
        for source, (images, labels) in SOURCE_FILES.items()
    }


@contextlib.contextmanager
def _open(path: str):
    """A gzip stream read through Beam's FileSystems (local, gs://, s3://, ...), not the local disk.

    Python's gzip does the decompression, so a cut stream raises EOFError as it always did.
    """
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
        if raw.read(2) != b"\x1f\x8b":
            raise IdxFormatError(f"{path}: not a gzip file")
        raw.seek(0)
        with gzip.GzipFile(filename=path, fileobj=raw, mode="rb") as stream:
            yield stream


def read_header(stream, path: str, magic: int) -> IdxHeader:
    head = stream.read(4)
    if len(head) < 4:
        raise IdxFormatError(f"{path}: file too short for an IDX header")
    found = struct.unpack(">I", head)[0]
    if found != magic:
        raise IdxFormatError(f"{path}: magic number {found}, expected {magic}")
    ndim = found & 0xFF
    dims = struct.unpack(f">{ndim}I", stream.read(4 * ndim))
    if magic == IMAGES_MAGIC and tuple(dims[1:]) != (HEIGHT, WIDTH):
        raise IdxFormatError(f"{path}: images of shape {tuple(dims[1:])}, expected (28, 28)")
    return IdxHeader(count=dims[0], item_shape=tuple(dims[1:]))


def check_source_dir(directory: str) -> None:
    """Fail fast (IdxFormatError / FileNotFoundError) unless all four IDX files are usable.

    Through Beam's FileSystems: object stores have no directories, so "the folder exists" means
    "something is listed under it".
    """
    try:
        listed = FileSystems.match([FileSystems.join(directory, "*")])[0].metadata_list
    except BeamIOError as err:
        raise FileNotFoundError(f"input directory not found: {directory} ({err})") from err
    if not listed:
        raise FileNotFoundError(f"input directory not found (or empty): {directory}")
    for images, labels in source_paths(directory).values():
        for path, magic in ((images, IMAGES_MAGIC), (labels, LABELS_MAGIC)):
            if not FileSystems.exists(path):
                raise FileNotFoundError(f"missing IDX file: {path}")
            try:
                with _open(path) as stream:
                    read_header(stream, path, magic)
            except (OSError, EOFError) as err:
                raise IdxFormatError(f"{path}: unreadable gzip ({err})") from err


def read_pairs(images_path: str, labels_path: str) -> Iterator[tuple[int, bytes | None, int | None, str | None]]:
    """Yield (index, image bytes, label, reason) for every record either header announces.

    A record is usable when reason is None. Truncated data, a count mismatch between the two
    files and labels outside 0..9 yield a reason instead, so no record disappears silently.
    """
    with _open(images_path) as images, _open(labels_path) as labels:
        image_header = read_header(images, images_path, IMAGES_MAGIC)
        label_header = read_header(labels, labels_path, LABELS_MAGIC)
        total = max(image_header.count, label_header.count)
        for index in range(total):
            image = _read_exact(images, IMAGE_BYTES) if index < image_header.count else None
            label_raw = _read_exact(labels, 1) if index < label_header.count else None
            if index >= image_header.count or index >= label_header.count:
                yield index, None, None, "count mismatch: no matching image or label in the paired file"
            elif image is None:
                yield index, None, None, "truncated IDX record in images file"
            elif label_raw is None:
                yield index, None, None, "truncated IDX record in labels file"
            elif label_raw[0] >= len(CLASS_NAMES):
                yield index, None, None, f"label {label_raw[0]} out of range 0..9"
            else:
                yield index, image, label_raw[0], None


def _read_exact(stream, size: int) -> bytes | None:
    try:
        data = stream.read(size)
    except (EOFError, OSError):  # gzip stream cut short
        return None
    return data if len(data) == size else None


def to_example(image: bytes, label: int) -> bytes:
    feature = {
        IMAGE: tf.train.Feature(bytes_list=tf.train.BytesList(value=[image])),
        LABEL: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def raw_feature_spec() -> dict:
    return {
        IMAGE: tf.io.FixedLenFeature([], tf.string),
        LABEL: tf.io.FixedLenFeature([], tf.int64),
    }


def pixels_to_raw_bytes(pixels: tf.Tensor) -> tf.Tensor:
    """uint8 [N, 28, 28] → the raw `image` feature, [N] strings of 784 bytes (inverse of decode_raw)."""
    byte_table = tf.constant([bytes([i]) for i in range(256)])
    as_bytes = tf.gather(byte_table, tf.cast(pixels, tf.int32))
    return tf.strings.reduce_join(tf.reshape(as_bytes, [-1, IMAGE_BYTES]), axis=1)


def preprocessing_fn(inputs: dict) -> dict:
    """Raw bytes → float32 [N, 28, 28] in [0, 1]; label passes through as int64."""
    pixels = tf.io.decode_raw(inputs[IMAGE], tf.uint8)
    image = tf.reshape(tf.cast(pixels, tf.float32) / 255.0, [-1, HEIGHT, WIDTH])
    outputs = {IMAGE_XF: image}
    if LABEL in inputs:
        outputs[LABEL_XF] = tf.cast(inputs[LABEL], tf.int64)
    return outputs
