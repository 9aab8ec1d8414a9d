"""`memory://`: a Beam FileSystem kept in this process's memory, for tests.

Beam's Python SDK has no in-memory file system, so this is one, written against Beam's FileSystem
interface the way its GCS and S3 file systems are: no folders, a path is an object name, listing is
by prefix. Importing this module registers the scheme with Beam (Beam finds FileSystem subclasses).
Only code that goes through `apache_beam.io.filesystems.FileSystems` can read it: `open()`,
`os.path`, `gzip.open` or `tf.io.gfile` on a `memory://` path fail, which is what the tests rely on.
It lives in one process: use it with the in-process FnApiRunner (the default in_memory mode).
"""

from __future__ import annotations

import io
import threading
import time

from apache_beam.io.filesystem import (
    BeamIOError,
    CompressedFile,
    CompressionTypes,
    FileMetadata,
    FileSystem,
)

SCHEME = "memory"
PREFIX = f"{SCHEME}://"
_objects: dict[str, tuple[bytes, float]] = {}
_lock = threading.Lock()


def clear(prefix: str = PREFIX) -> None:
    with _lock:
        for path in [p for p in _objects if p.startswith(prefix)]:
            del _objects[path]


def listing(prefix: str = PREFIX) -> list[str]:
    with _lock:
        return sorted(p for p in _objects if p.startswith(prefix))


class _Reader(io.BytesIO):
    mode = "rb"  # Beam's CompressedFile asks


class _Writer(io.BytesIO):
    """Becomes visible on close, like an object upload."""

    mode = "wb"

    def __init__(self, path: str):
        super().__init__()
        self._path = path

    def close(self) -> None:
        if not self.closed:
            with _lock:
                _objects[self._path] = (self.getvalue(), time.time())
        super().close()


class MemoryFileSystem(FileSystem):
    @classmethod
    def scheme(cls) -> str:
        return SCHEME

    def join(self, basepath: str, *paths: str) -> str:
        return "/".join([basepath.rstrip("/"), *(p.strip("/") for p in paths)])

    def split(self, path: str) -> tuple[str, str]:
        if not path.startswith(PREFIX):
            raise ValueError(f"not a {PREFIX} path: {path}")
        head, _, tail = path[len(PREFIX):].rpartition("/")
        return PREFIX + head, tail

    def mkdirs(self, path: str) -> None:  # no folders, as in an object store
        pass

    def has_dirs(self) -> bool:
        return False

    def _list(self, dir_or_prefix: str):
        with _lock:
            found = [(p, len(d), t) for p, (d, t) in _objects.items() if p.startswith(dir_or_prefix)]
        for path, size, mtime in sorted(found):
            yield FileMetadata(path, size, mtime)

    def create(self, path, mime_type="application/octet-stream", compression_type=CompressionTypes.AUTO):
        compression = FileSystem._get_compression_type(path, compression_type)
        raw = _Writer(path)
        return raw if compression == CompressionTypes.UNCOMPRESSED else CompressedFile(raw, compression)

    def open(self, path, mime_type="application/octet-stream", compression_type=CompressionTypes.AUTO):
        with _lock:
            if path not in _objects:
                raise BeamIOError("Open operation failed", {path: FileNotFoundError(path)})
            raw = _Reader(_objects[path][0])
        compression = FileSystem._get_compression_type(path, compression_type)
        return raw if compression == CompressionTypes.UNCOMPRESSED else CompressedFile(raw, compression)

    def copy(self, source_file_names, destination_file_names):
        with _lock:
            for source, destination in zip(source_file_names, destination_file_names, strict=True):
                for path in [p for p in _objects if p == source or p.startswith(source.rstrip("/") + "/")]:
                    _objects[destination + path[len(source):]] = _objects[path]

    def rename(self, source_file_names, destination_file_names):
        self.copy(source_file_names, destination_file_names)
        self.delete(source_file_names)

    def exists(self, path: str) -> bool:
        with _lock:
            return path in _objects

    def size(self, path: str) -> int:
        return self.metadata(path).size_in_bytes

    def last_updated(self, path: str) -> float:
        return self.metadata(path).last_updated_in_seconds

    def checksum(self, path: str) -> str:
        return str(self.size(path))

    def metadata(self, path: str) -> FileMetadata:
        with _lock:
            if path not in _objects:
                raise BeamIOError("Metadata operation failed", {path: FileNotFoundError(path)})
            data, mtime = _objects[path]
        return FileMetadata(path, len(data), mtime)

    def delete(self, paths) -> None:
        missing = {}
        with _lock:
            for path in paths:
                under = [p for p in _objects if p == path or p.startswith(path.rstrip("/") + "/")]
                if not under:
                    missing[path] = FileNotFoundError(path)
                for p in under:
                    del _objects[p]
        if missing:
            raise BeamIOError("Delete operation failed", missing)
