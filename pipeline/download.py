"""`tfgate pipeline … --download`: fetch the full official datasets and verify their checksums.

Files already present are verified, not fetched again (the offline path). A mismatch is an error,
never a silent overwrite: the user decides what to do with a file that is not the official one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request

# Official Fashion-MNIST files (60,000 + 10,000 images) and their published md5 sums.
FASHION_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
# The book's housing.tgz holds housing.csv; this is the sha256 of that CSV (20,640 rows).
HOUSING_ARCHIVE = "housing.tgz"
HOUSING_CSV_SHA256 = "8a3727f4cf54ac1a327f69b1d5b4db54c5834ea81c6e4efc0d163300022a685e"
MIRROR_ENV = "TFGATE_DATA_MIRROR"


class DownloadError(RuntimeError):
    """A download failed or a file does not match its published checksum."""


def digest(path: str, algorithm: str) -> str:
    hasher = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def verify(path: str, algorithm: str, expected: str) -> None:
    found = digest(path, algorithm)
    if found != expected:
        raise DownloadError(
            f"checksum mismatch for {path}: {algorithm} {found}, expected {expected} "
            "(not the official file; move it away to download the real one)"
        )


def _fetch(url: str, destination: str) -> None:
    partial = destination + ".partial"
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out)
    except OSError as err:
        raise DownloadError(f"could not download {url}: {err}") from err
    os.replace(partial, destination)


def fetch_fashion(directory: str, mirror: str | None = None) -> list[str]:
    """Ensure the four official Fashion-MNIST files are in `directory`; returns what was fetched."""
    os.makedirs(directory, exist_ok=True)
    fetched = []
    for name, md5 in FASHION_MD5.items():
        path = os.path.join(directory, name)
        if not os.path.exists(path):
            if mirror:
                _fetch(mirror.rstrip("/") + "/" + name, path)
            else:
                shutil.copyfile(_keras_cached_fashion_file(name), path)
            fetched.append(name)
        verify(path, "md5", md5)
    return fetched


def _keras_cached_fashion_file(name: str) -> str:
    """Keras knows the official origin of Fashion-MNIST; let it download into its cache."""
    import keras

    try:
        keras.datasets.fashion_mnist.load_data()
    except Exception as err:  # network errors surface as many types
        raise DownloadError(f"could not download Fashion-MNIST through Keras: {err}") from err
    cache = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return os.path.join(cache, "datasets", "fashion-mnist", name)


def fetch_housing(csv_path: str, mirror: str | None = None) -> bool:
    """Ensure the full housing CSV is at `csv_path`; returns True when it was downloaded."""
    if os.path.exists(csv_path):
        verify(csv_path, "sha256", HOUSING_CSV_SHA256)
        return False
    if not mirror:
        raise DownloadError(
            f"{csv_path} is missing; pass --mirror URL (or set {MIRROR_ENV}) to the folder that holds "
            f"{HOUSING_ARCHIVE}, e.g. the datasets/housing folder of the Hands-On ML book's repository"
        )
    os.makedirs(os.path.dirname(os.path.abspath(csv_path)), exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        archive = os.path.join(scratch, HOUSING_ARCHIVE)
        _fetch(mirror.rstrip("/") + "/" + HOUSING_ARCHIVE, archive)
        try:
            with tarfile.open(archive) as tar:
                member = tar.getmember("housing.csv")
                tar.extractall(scratch, members=[member], filter="data")
        except (tarfile.TarError, KeyError) as err:
            raise DownloadError(f"{HOUSING_ARCHIVE} is not the housing archive: {err}") from err
        extracted = os.path.join(scratch, "housing.csv")
        verify(extracted, "sha256", HOUSING_CSV_SHA256)
        shutil.move(extracted, csv_path)
    return True


def fetch(dataset: str, path: str, mirror: str | None = None) -> None:
    """Ensure the full `dataset` is at `path` (the housing CSV, or the Fashion-MNIST folder)."""
    {"housing": fetch_housing, "fashion": fetch_fashion}[dataset](path, mirror)
