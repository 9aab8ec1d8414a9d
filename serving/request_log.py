"""Request logging: TF Serving's `PredictionLog` records written to rotating TFRecord files.

What `ModelConfig.logging_config` asks for (`log_collector_config.filename_prefix`,
`sampling_config.sampling_rate`), for the model server and the gateway alike:

- Serving never waits for logging. A sampled request is put on a bounded in-memory queue (a lock,
  a length check and an append); a writer thread per filename prefix serializes and writes the records.
  When the queue is full the record is dropped and counted, never queued behind the disk.
- Files are TFRecord (the framing warm-up files use; no TensorFlow needed to write or read them) named
  `<prefix>-<UTC time>-<pid>-<sequence>.tfrecord`, written as `<name>.partial` and renamed when
  closed, so a reader never takes a file that is still being written (or was cut by a crash) for a
  finished one. A file is closed when it reaches `max_file_bytes` or is `max_file_seconds` old.
- `close()` (SIGTERM) writes everything already accepted, then closes and renames the open file.

A record is an ordinary `PredictionLog`: `log_metadata` (model spec with the version that served the
request, sampling config, `saved_model_tags`, `timestamp_secs`) and one of predict/classify/regress/
multi_inference logs with the request and, when it succeeded, the response. tfgate adds three fields
that `PredictionLog` has no slot for, in field numbers TF Serving does not use (parsers keep them as
unknown fields, TF Serving's warm-up reader ignores them): the outcome, the latency and where the
request came from (`read_extras`).
"""

from __future__ import annotations

import collections
import glob
import logging
import os
import random
import struct
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import google_crc32c

log = logging.getLogger("tfgate.request_log")

DEFAULT_MAX_FILE_BYTES = 64 << 20
DEFAULT_MAX_FILE_SECONDS = 600.0
DEFAULT_QUEUE_RECORDS = 10_000
SUFFIX = ".tfrecord"
PARTIAL = ".partial"
# How often the writer looks at its queue and the age of its open file. Rarely: each wake-up takes the
# GIL from the serving threads, which costs most on a busy machine. A queue half full wakes it at once.
_POLL_SECONDS = 0.1
_BATCH = 512  # records serialized and written per write() call

# PredictionLog's fields (tensorflow_serving/apis/prediction_log.proto); each *Log message holds
# `request = 1` and `response = 2`.
_LOG_METADATA = 1
LOG_FIELDS = {"classify_log": 2, "regress_log": 3, "multi_inference_log": 4, "session_run_log": 5,
              "predict_log": 6, "predict_streamed_log": 7}
# tfgate's own fields on PredictionLog (see the module docstring).
STATUS_FIELD = 100_001  # string: gRPC status code name; absent means OK
LATENCY_FIELD = 100_002  # varint: microseconds from request received to response ready
ORIGIN_FIELD = 100_003  # string: e.g. "model_server:grpc", "gateway:typed"
MESSAGE_FIELD = 100_004  # string: the error message of a failed request (first 500 characters)


class RequestLogError(ValueError):
    """A logging configuration that cannot work, or a log file that is not a valid TFRecord file."""


# ---------------------------------------------------------------------------------------------
# TFRecord framing: uint64 length, masked crc32c of the length, data, masked crc32c of the data.


def _masked_crc(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame(data: bytes) -> bytes:
    """One TFRecord record holding `data`."""
    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", _masked_crc(header)) + data + struct.pack("<I", _masked_crc(data))


def read_tfrecords(path: str) -> Iterator[bytes]:
    """The records of an uncompressed TFRecord file, CRCs checked; a damaged file raises RequestLogError."""
    with open(path, "rb") as handle:
        offset = 0
        while True:
            head = handle.read(12)
            if not head:
                return
            if len(head) < 12:
                raise RequestLogError(f"{path}: truncated record header at byte {offset}")
            length, crc = struct.unpack("<QI", head)
            if _masked_crc(head[:8]) != crc:
                raise RequestLogError(f"{path}: corrupt record length at byte {offset} (not a TFRecord file?)")
            data = handle.read(length)
            tail = handle.read(4)
            if len(data) < length or len(tail) < 4:
                raise RequestLogError(f"{path}: truncated record at byte {offset}")
            if _masked_crc(data) != struct.unpack("<I", tail)[0]:
                raise RequestLogError(f"{path}: corrupt record data at byte {offset}")
            yield data
            offset += 16 + length


def write_tfrecords(path: str, records: Iterable[bytes]) -> int:
    """Write `records` to `path` (via a temporary name, renamed when complete); returns the count."""
    temp = f"{path}{PARTIAL}"
    count = 0
    with open(temp, "wb") as handle:
        for data in records:
            handle.write(frame(data))
            count += 1
    os.replace(temp, path)
    return count


def log_files(paths: Iterable[str]) -> tuple[list[str], list[str]]:
    """(finished log files, partial files skipped) named by `paths`: log files, folders (searched
    recursively) or filename prefixes as given in `filename_prefix`."""
    found: set[str] = set()
    partial: set[str] = set()
    for path in paths:
        if os.path.isfile(path):
            found.add(path)  # named explicitly: read whatever it is called
            continue
        if os.path.isdir(path):
            pattern = os.path.join(glob.escape(path), "**", "*")
        else:
            pattern = glob.escape(path) + "*"
        candidates = glob.glob(pattern, recursive=True)
        if not candidates and not os.path.isdir(path):
            raise RequestLogError(f"{path}: no such file, folder or log filename prefix")
        for name in candidates:
            if name.endswith(SUFFIX + PARTIAL):
                partial.add(name)
            elif name.endswith(SUFFIX) and os.path.isfile(name):
                found.add(name)
    return sorted(found), sorted(partial)


# ---------------------------------------------------------------------------------------------
# Wire-format helpers: a record is assembled from already-serialized parts, so the request and the
# response are serialized once, in the writer thread, and never copied into a new message.


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _bytes_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint_field(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _top_level_field(data: bytes, number: int) -> bytes | None:
    """The payload of length-delimited field `number` at the top level of a serialized message."""
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _read_varint(data, pos)
        wire_type = key & 7
        if wire_type == 0:
            _, pos = _read_varint(data, pos)
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        elif wire_type == 2:
            size, pos = _read_varint(data, pos)
            if key >> 3 == number:
                return data[pos:pos + size]
            pos += size
        else:
            return None
    return None


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _served_by(response: bytes | None) -> tuple[int, str]:
    """(version, signature) from a Predict/Classify/Regress response's model_spec (field 2 of each)."""
    if not response:
        return 0, ""
    from tensorflow_serving.apis import model_pb2

    spec = model_pb2.ModelSpec.FromString(_top_level_field(response, 2) or b"")
    return spec.version.value, spec.signature_name


def _serialized(message) -> bytes:
    return message if isinstance(message, bytes | bytearray) else message.SerializeToString()


def read_extras(log) -> dict:
    """tfgate's fields of a parsed PredictionLog: {"status", "latency_us", "origin", "message"}."""
    from google.protobuf.unknown_fields import UnknownFieldSet

    extras = {"status": "OK", "latency_us": None, "origin": "", "message": ""}
    names = {STATUS_FIELD: "status", ORIGIN_FIELD: "origin", MESSAGE_FIELD: "message"}
    for item in UnknownFieldSet(log):
        if item.field_number == LATENCY_FIELD:
            extras["latency_us"] = int(item.data)
        elif item.field_number in names:
            extras[names[item.field_number]] = bytes(item.data).decode("utf-8", "replace")
    return extras


# ---------------------------------------------------------------------------------------------


@dataclass
class ModelCounters:
    """Per model; `sampled` = offered to the queue = accepted + dropped."""

    sampled: int = 0
    dropped: int = 0  # queue full, or logging already closed
    written: int = 0
    failed: int = 0  # accepted but lost to a write error (disk full, permissions)


@dataclass(slots=True)
class _Item:
    model: ModelLogger
    kind: str
    request: object
    response: object
    version: int
    signature: str
    status: str
    latency_us: int
    origin: str
    message: str
    timestamp: int


class ModelLogger:
    """One model's sampling and counters, feeding the sink of its filename prefix."""

    def __init__(self, name: str, sampling_rate: float, sink: LogSink, rng: random.Random | None = None,
                 listener=None):
        if not 0.0 <= sampling_rate <= 1.0:
            raise RequestLogError(f"model {name}: logging_config.sampling_config.sampling_rate must be in "
                                  f"[0, 1], got {sampling_rate}")
        self.name = name
        self.sampling_rate = sampling_rate
        self.sink = sink
        self.counters = ModelCounters()
        # listener(model, outcome, count), outcome "written" | "dropped" | "failed": e.g. Prometheus counters
        # a server keeps itself (the gateway's, multi-process); called by the writer, or on a drop
        self.listener = listener
        self._random = (rng or random.Random()).random
        self._metadata: dict[tuple, bytes] = {}

    def log(self, kind: str, request, response=None, *, version: int | None = 0, signature: str = "",
            status: str = "OK", latency: float = 0.0, origin: str = "", message: str = "") -> bool:
        """Offer one request (and its response; None when it failed) for logging. Never blocks.

        `request`/`response`: protobuf messages (or their serialized bytes), not modified afterwards.
        `version=None`: the version (and signature, if not given) the response names, read in the writer.
        Returns True when the record was accepted (it will be written unless the disk fails).
        """
        rate = self.sampling_rate
        if rate < 1.0 and (rate <= 0.0 or self._random() >= rate):
            return False
        item = _Item(self, kind, request, response, version, signature, status, int(latency * 1e6), origin,
                     message, int(time.time()))
        return self.sink.put(item)

    def metadata(self, version: int, signature: str, timestamp: int) -> bytes:
        """LogMetadata bytes; the constant part is built once per (version, signature)."""
        key = (version, signature)
        base = self._metadata.get(key)
        if base is None:
            from tensorflow_serving.apis import logging_pb2

            meta = logging_pb2.LogMetadata()
            meta.model_spec.name = self.name
            if version:
                meta.model_spec.version.value = version
            if signature:
                meta.model_spec.signature_name = signature
            meta.sampling_config.sampling_rate = self.sampling_rate
            meta.saved_model_tags.append("serve")
            base = self._metadata[key] = meta.SerializeToString()
        return base + _varint_field(4, timestamp)  # LogMetadata.timestamp_secs = 4


def encode_record(item: _Item) -> bytes:
    """The serialized PredictionLog for one logged request."""
    body = _bytes_field(1, _serialized(item.request))
    response = None if item.response is None else _serialized(item.response)
    if response is not None:
        body += _bytes_field(2, response)
    version, signature = item.version, item.signature
    if version is None:
        version, served_signature = _served_by(response)
        signature = signature or served_signature
    out = _bytes_field(_LOG_METADATA, item.model.metadata(version, signature, item.timestamp))
    out += _bytes_field(LOG_FIELDS[item.kind], body)
    if item.status != "OK":
        out += _bytes_field(STATUS_FIELD, item.status.encode())
        if item.message:
            out += _bytes_field(MESSAGE_FIELD, item.message[:500].encode("utf-8", "replace"))
    if item.latency_us > 0:
        out += _varint_field(LATENCY_FIELD, item.latency_us)
    if item.origin:
        out += _bytes_field(ORIGIN_FIELD, item.origin.encode())
    return out


def _count(model: ModelLogger, outcome: str, n: int) -> None:
    """The writer's outcomes (the writer thread is their only writer)."""
    setattr(model.counters, outcome, getattr(model.counters, outcome) + n)
    if model.listener is not None:
        model.listener(model.name, outcome, n)


@dataclass
class SinkCounters:
    files: int = 0  # finished (renamed) files
    bytes: int = 0  # bytes written, all files
    errors: int = 0  # I/O errors (each may lose the records being written)


class LogSink:
    """The files of one filename prefix: a bounded queue and the thread that writes it."""

    def __init__(self, filename_prefix: str, *, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
                 max_file_seconds: float = DEFAULT_MAX_FILE_SECONDS, queue_records: int = DEFAULT_QUEUE_RECORDS,
                 fsync: bool = True):
        if not filename_prefix:
            raise RequestLogError("logging_config.log_collector_config.filename_prefix is empty")
        if max_file_bytes <= 0 or max_file_seconds <= 0 or queue_records <= 0:
            raise RequestLogError("request log: max_file_bytes, max_file_seconds and queue_records must be > 0")
        self.prefix = filename_prefix
        self.max_file_bytes = max_file_bytes
        self.max_file_seconds = max_file_seconds
        self.capacity = queue_records
        self._half = max(1, queue_records // 2)
        self.fsync = fsync
        self.counters = SinkCounters()
        self._queue: collections.deque = collections.deque()
        self._lock = threading.Lock()
        self._closed = False
        self._wake = threading.Event()
        self._marks: list[threading.Event] = []  # flush() requests, answered by the writer
        self._file = None
        self._file_path = ""
        self._file_bytes = 0
        self._file_opened = 0.0
        self._sequence = 0
        self._error_logged = 0.0
        self._thread = threading.Thread(target=self._run, name=f"request-log:{os.path.basename(filename_prefix)}",
                                        daemon=True)
        self._thread.start()

    # -- producer side (serving threads / the event loop) -----------------------------------------

    def put(self, item: _Item) -> bool:
        counters = item.model.counters
        with self._lock:
            counters.sampled += 1
            if not self._closed and len(self._queue) < self.capacity:
                self._queue.append(item)
                if len(self._queue) == self._half:
                    self._wake.set()
                return True
            counters.dropped += 1
        if item.model.listener is not None:
            item.model.listener(item.model.name, "dropped", 1)
        return False

    def depth(self) -> int:
        return len(self._queue)

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Write what is queued and finish the open file (rename it); True when done within `timeout`."""
        done = threading.Event()
        with self._lock:
            if self._closed and not self._thread.is_alive():
                return True
            self._marks.append(done)
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not done.wait(0.1):  # the writer may have exited (close) before seeing the request
            if not self._thread.is_alive() or (deadline is not None and time.monotonic() > deadline):
                return not self._thread.is_alive() and not self._queue
        return True

    def close(self, timeout: float | None = 30.0) -> bool:
        """Stop accepting records, write every accepted one, finish the file. True when all was written."""
        with self._lock:
            self._closed = True
        self._wake.set()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- writer thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(_POLL_SECONDS)
            self._wake.clear()
            self._drain()
            with self._lock:
                closing, marks, self._marks = self._closed and not self._queue, self._marks, []
            if marks or closing:
                self._drain()
                self._finish_file()
                for mark in marks:
                    mark.set()
            elif self._file is not None and time.monotonic() - self._file_opened >= self.max_file_seconds:
                self._finish_file()
            if closing:
                with self._lock:
                    marks, self._marks = self._marks, []
                for mark in marks:
                    mark.set()
                return

    def _drain(self) -> None:
        queue = self._queue
        while queue:
            batch = []
            try:
                while len(batch) < _BATCH:
                    batch.append(queue.popleft())
            except IndexError:
                pass
            self._write(batch)

    def _write(self, batch: list[_Item]) -> None:
        chunks: list[bytes] = []
        models: list[ModelLogger] = []
        pending = 0
        for item in batch:
            try:
                record = frame(encode_record(item))
            except Exception as err:  # a message that cannot be serialized must not stop the writer
                _count(item.model, "failed", 1)
                self._error(f"cannot encode a record of model {item.model.name}: {err}")
                continue
            in_file = (self._file_bytes if self._file is not None else 0) + pending
            if in_file and in_file + len(record) > self.max_file_bytes:
                self._emit(chunks, models)
                chunks, models, pending = [], [], 0
                self._finish_file()
            chunks.append(record)
            models.append(item.model)
            pending += len(record)
        self._emit(chunks, models)

    def _emit(self, chunks: list[bytes], models: list[ModelLogger]) -> None:
        if not chunks:
            return
        data = b"".join(chunks)
        try:
            if self._file is None:
                self._open_file()
            self._file.write(data)
        except OSError as err:
            for model, n in collections.Counter(models).items():
                _count(model, "failed", n)
            self._error(f"cannot write {self._file_path or self.prefix}: {err}")
            self._abandon_file()
            return
        self._file_bytes += len(data)
        self.counters.bytes += len(data)
        for model, n in collections.Counter(models).items():
            _count(model, "written", n)

    def _open_file(self) -> None:
        now = time.time()
        self._sequence += 1
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
        joiner = "" if self.prefix.endswith(("/", os.sep)) else "-"
        path = f"{self.prefix}{joiner}{stamp}-{os.getpid()}-{self._sequence:05d}{SUFFIX}"
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        self._file = open(path + PARTIAL, "wb")  # closed by _finish_file
        self._file_path = path
        self._file_bytes = 0
        self._file_opened = time.monotonic()

    def _finish_file(self) -> None:
        handle, path = self._file, self._file_path
        if handle is None:
            return
        self._file = None
        try:
            handle.flush()
            if self.fsync:
                os.fsync(handle.fileno())
            handle.close()
            os.replace(path + PARTIAL, path)
            self.counters.files += 1
        except OSError as err:
            self._error(f"cannot finish {path}: {err}")
            self._abandon_file(handle)

    def _abandon_file(self, handle=None) -> None:
        """After an I/O error: the file stays `.partial` (its records may be incomplete); start a new one."""
        handle = handle or self._file
        self._file = None
        if handle is not None:
            try:
                handle.close()
            except OSError:
                pass

    def _error(self, text: str) -> None:
        self.counters.errors += 1
        now = time.monotonic()
        if now - self._error_logged > 10:  # a full disk must not flood the server's log
            self._error_logged = now
            log.error("request log: %s", text)


# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoggingSpec:
    """One model's request logging: where (filename prefix) and how much (sampling rate)."""

    filename_prefix: str
    sampling_rate: float


def specs_from_model_server_config(config) -> dict[str, LoggingSpec]:
    """{model name: LoggingSpec} of the models of a ModelServerConfig that have a `logging_config`.

    `log_collector_config.type` names a collector in TF Serving's plug-in registry (open-source builds
    have none); tfgate has one kind of collector, these TFRecord files, whatever the type says.
    """
    specs = {}
    for model in config.model_config_list.config:
        if model.HasField("logging_config"):
            logging_config = model.logging_config
            specs[model.name] = LoggingSpec(logging_config.log_collector_config.filename_prefix,
                                            logging_config.sampling_config.sampling_rate)
    return specs


@dataclass
class RequestLogs:
    """Every model's request logger; reconfigured when the server's model config changes.

    Models sharing a filename prefix share its files and writer thread. A model whose prefix or rate
    changes gets a new logger; a prefix nobody uses any more is flushed and closed.
    """

    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    max_file_seconds: float = DEFAULT_MAX_FILE_SECONDS
    queue_records: int = DEFAULT_QUEUE_RECORDS
    fsync: bool = True
    listener: object = None  # given to every ModelLogger (see there)
    models: dict[str, ModelLogger] = field(default_factory=dict)
    sinks: dict[str, LogSink] = field(default_factory=dict)
    # The counters of loggers replaced or removed (live: their writer may still be finishing), so the
    # exported totals never go down.
    retired: list[tuple[str, ModelCounters]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def configure(self, specs: dict[str, LoggingSpec]) -> None:
        """Make the loggers match `specs` ({model name: spec}); raises RequestLogError for a bad spec
        before changing anything."""
        for name, spec in specs.items():
            if not spec.filename_prefix:
                raise RequestLogError(f"model {name}: logging_config.log_collector_config.filename_prefix is empty")
            if not 0.0 <= spec.sampling_rate <= 1.0:
                raise RequestLogError(f"model {name}: logging_config.sampling_config.sampling_rate must be in "
                                      f"[0, 1], got {spec.sampling_rate}")
        with self._lock:
            models = {}
            for name, spec in specs.items():
                sink = self.sinks.get(spec.filename_prefix)
                if sink is None:
                    sink = self.sinks[spec.filename_prefix] = LogSink(
                        spec.filename_prefix, max_file_bytes=self.max_file_bytes,
                        max_file_seconds=self.max_file_seconds, queue_records=self.queue_records, fsync=self.fsync)
                current = self.models.get(name)
                if current is not None and current.sink is sink and current.sampling_rate == spec.sampling_rate:
                    models[name] = current
                else:
                    models[name] = ModelLogger(name, spec.sampling_rate, sink, listener=self.listener)
            for name, old in self.models.items():
                if models.get(name) is not old:
                    self._retire(old)
            self.models = models  # one assignment: readers see the old or the new map, never a mix
            unused = [p for p in self.sinks if p not in {s.filename_prefix for s in specs.values()}]
            closing = [self.sinks.pop(p) for p in unused]
        for sink in closing:
            sink.close()

    def _retire(self, old: ModelLogger) -> None:
        self.retired.append((old.name, old.counters))

    def get(self, model: str) -> ModelLogger | None:
        return self.models.get(model)

    def flush(self, timeout: float | None = 30.0) -> bool:
        return all([sink.flush(timeout) for sink in list(self.sinks.values())])

    def close(self, timeout: float | None = 30.0) -> bool:
        """Write everything accepted and finish every file (the servers call it on SIGTERM)."""
        with self._lock:
            sinks = list(self.sinks.values())
        return all([sink.close(timeout) for sink in sinks])

    def totals(self) -> dict[str, ModelCounters]:
        """Counters per model name, including loggers that were replaced (they only grow)."""
        out: dict[str, ModelCounters] = {}
        for source in (list(self.retired), [(m.name, m.counters) for m in list(self.models.values())]):
            for name, c in source:
                total = out.setdefault(name, ModelCounters())
                total.sampled += c.sampled
                total.dropped += c.dropped
                total.written += c.written
                total.failed += c.failed
        return out

    def collector(self, prefix: str = "tfgate_request_log"):
        """A prometheus_client collector exporting these counters (registered once by a server)."""
        return _Collector(self, prefix)


class _Collector:
    """Reads the plain counters at scrape time, so the serving path never touches prometheus_client."""

    def __init__(self, logs: RequestLogs, prefix: str):
        self.logs = logs
        self.prefix = prefix

    def describe(self):
        return []

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        records = CounterMetricFamily(f"{self.prefix}_records", "Requests picked by sampling, by model and outcome: "
                                      "written; dropped (queue full or shutting down); failed (write error).",
                                      labels=["model_name", "outcome"])
        for name, c in sorted(self.logs.totals().items()):
            records.add_metric([name, "written"], c.written)
            records.add_metric([name, "dropped"], c.dropped)
            records.add_metric([name, "failed"], c.failed)
        files = CounterMetricFamily(f"{self.prefix}_files", "Log files finished (closed and renamed).",
                                    labels=["filename_prefix"])
        errors = CounterMetricFamily(f"{self.prefix}_errors", "I/O errors while writing log files.",
                                     labels=["filename_prefix"])
        depth = GaugeMetricFamily(f"{self.prefix}_queue_records", "Records waiting to be written.",
                                  labels=["filename_prefix"])
        for prefix, sink in sorted(self.logs.sinks.items()):
            files.add_metric([prefix], sink.counters.files)
            errors.add_metric([prefix], sink.counters.errors)
            depth.add_metric([prefix], sink.depth())
        yield records
        yield files
        yield errors
        yield depth
