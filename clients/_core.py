"""What the sync and asyncio clients share: options, channels, input conversion, chunked jobs.

The two clients differ only in how they wait; everything about building requests, splitting them
and putting answers back in order lives here so both behave the same.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import grpc
import numpy as np

from tfgate.v1 import gateway_pb2 as pb

from .errors import InvalidArgument, TfgateError, named_index, relocate
from .results import (
    ClassScore,
    FashionClassifications,
    HousingPredictions,
    ModelInfo,
    ModelVersionInfo,
    PredictResult,
    ServedBy,
)
from .tensors import from_tensor, to_tensor

# The raw housing columns are HousingRecord's fields (the proto is where they are written down):
# floats, `optional` floats that may be missing, and non-empty strings.
HOUSING_COLUMNS = tuple(f.name for f in pb.HousingRecord.DESCRIPTOR.fields)
HOUSING_OPTIONAL = frozenset(f.name for f in pb.HousingRecord.DESCRIPTOR.fields if f.has_presence)
_HOUSING_STRINGS = frozenset(f.name for f in pb.HousingRecord.DESCRIPTOR.fields if f.type == f.TYPE_STRING)
_STATES = {v.number: v.name.removeprefix("MODEL_VERSION_STATE_")
           for v in pb.ModelVersionState.DESCRIPTOR.values}
_COMPRESSION = {None: grpc.Compression.NoCompression, "none": grpc.Compression.NoCompression,
                "gzip": grpc.Compression.Gzip, "deflate": grpc.Compression.Deflate}

Errors = Literal["raise", "collect"]
Progress = Callable[[int], None]


@dataclass
class ClientOptions:
    """Connection options shared by `GatewayClient`, `AsyncGatewayClient` and `TFServingClient`."""

    target: str = "127.0.0.1:9000"
    tls: bool = False
    ca_file: str | os.PathLike | None = None
    cert_file: str | os.PathLike | None = None
    key_file: str | os.PathLike | None = None
    server_name: str | None = None
    token: str | None = None
    timeout: float | None = 30.0
    retries: int = 3
    backoff: float = 0.1
    max_backoff: float = 2.0
    compression: str | None = None
    max_message_bytes: int = 64 * 1024 * 1024
    wait_for_ready: bool = False
    chunk_size: int = 512
    concurrency: int = 4
    metadata: Sequence[tuple[str, str]] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.compression not in _COMPRESSION:
            raise ValueError(f"compression: one of gzip, deflate or None, got {self.compression!r}")
        if self.chunk_size < 1 or self.concurrency < 1 or self.retries < 0:
            raise ValueError("chunk_size and concurrency must be >= 1, retries >= 0")
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("cert_file and key_file go together (client certificate for mTLS)")

    @property
    def secure(self) -> bool:
        return bool(self.tls or self.ca_file or self.cert_file)

    def credentials(self) -> grpc.ChannelCredentials:
        def read(path):
            return Path(path).read_bytes() if path else None

        return grpc.ssl_channel_credentials(root_certificates=read(self.ca_file),
                                            private_key=read(self.key_file),
                                            certificate_chain=read(self.cert_file))

    def channel_options(self) -> list[tuple[str, Any]]:
        opts: list[tuple[str, Any]] = [("grpc.max_send_message_length", self.max_message_bytes),
                                       ("grpc.max_receive_message_length", self.max_message_bytes),
                                       # the client retries itself (below), with the caller's deadline
                                       ("grpc.enable_retries", 0),
                                       # a restarted gateway is found again within 2 s, not gRPC's 120 s
                                       ("grpc.initial_reconnect_backoff_ms", 100),
                                       ("grpc.max_reconnect_backoff_ms", 2000)]
        if self.server_name:
            opts.append(("grpc.ssl_target_name_override", self.server_name))
        return opts

    def call_metadata(self, extra: Sequence[tuple[str, str]] = ()) -> tuple[tuple[str, str], ...]:
        md = list(self.metadata) + list(extra)
        if self.token:
            md.append(("authorization", f"Bearer {self.token}"))
        return tuple(md)

    @property
    def grpc_compression(self) -> grpc.Compression:
        return _COMPRESSION[self.compression]

    def sync_channel(self) -> grpc.Channel:
        if self.secure:
            return grpc.secure_channel(self.target, self.credentials(), self.channel_options(),
                                       self.grpc_compression)
        return grpc.insecure_channel(self.target, self.channel_options(), self.grpc_compression)

    def aio_channel(self) -> grpc.aio.Channel:
        if self.secure:
            return grpc.aio.secure_channel(self.target, self.credentials(), self.channel_options(),
                                           self.grpc_compression)
        return grpc.aio.insecure_channel(self.target, self.channel_options(), self.grpc_compression)

    def backoff_delay(self, attempt: int) -> float:
        """Exponential backoff with full jitter: spreads retries of many clients after an outage."""
        return random.uniform(0, min(self.max_backoff, self.backoff * 2 ** attempt))


def model_ref(name: str, version: int | None = None, label: str | None = None,
              signature: str | None = None) -> pb.ModelRef:
    if version is not None and label:
        raise InvalidArgument("model: give version or label, not both")
    ref = pb.ModelRef(name=name, signature_name=signature or "")
    if version is not None:
        ref.version = int(version)
    elif label:
        ref.label = label
    return ref


def served_by(msg: pb.ServedBy) -> ServedBy:
    return ServedBy(msg.model_name, msg.version, msg.label)


# ----- inputs -----------------------------------------------------------------------------------

def _number(value: Any, field_name: str, optional: bool = False) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if optional:
            return None
        raise InvalidArgument(f"{field_name}: missing value")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InvalidArgument(f"{field_name}: {value!r} is not a number") from None
    if math.isnan(x) and optional:
        return None
    if not math.isfinite(x):
        raise InvalidArgument(f"{field_name}: must be a finite number, got {value!r}")
    return x


def housing_record(row: Mapping[str, Any], index: int = 0) -> pb.HousingRecord:
    """One record (a mapping of the 9 raw columns; total_bedrooms may be missing, None or NaN) as a
    `tfgate.v1.HousingRecord`, checked like the gateway checks it; errors name `records[index].field`."""
    rec = pb.HousingRecord()
    for name in HOUSING_COLUMNS:
        value = row.get(name)
        if name in _HOUSING_STRINGS:
            if not isinstance(value, str) or not value:
                raise InvalidArgument(f"records[{index}].{name}: must be a non-empty string, got {value!r}")
            setattr(rec, name, value)
            continue
        number = _number(value, f"records[{index}].{name}", optional=name in HOUSING_OPTIONAL)
        if number is not None:
            setattr(rec, name, number)
    return rec


def housing_rows(records) -> list[Mapping[str, Any]]:
    """A list of dicts or a pandas DataFrame (duck-typed: pandas is not a dependency) as row mappings."""
    if hasattr(records, "to_dict") and hasattr(records, "columns"):
        return records.to_dict(orient="records")
    if isinstance(records, Mapping):
        return [records]
    return list(records)


def fashion_image(item: Any, index: int) -> pb.Image:
    """uint8 [28, 28] array -> pixels; bytes -> encoded (PNG/JPEG, decoded by the gateway); a path -> its
    file's bytes."""
    if isinstance(item, np.ndarray):
        if item.dtype != np.uint8 or item.shape != (28, 28):
            raise InvalidArgument(f"images[{index}]: need a uint8 [28, 28] array, got {item.dtype} "
                                  f"{list(item.shape)}")
        return pb.Image(pixels=np.ascontiguousarray(item).tobytes())
    if isinstance(item, bytes | bytearray | memoryview):
        return pb.Image(encoded=bytes(item))
    if isinstance(item, str | os.PathLike):
        try:
            return pb.Image(encoded=Path(item).read_bytes())
        except OSError as exc:
            raise InvalidArgument(f"images[{index}]: cannot read {os.fspath(item)}: {exc.strerror}") from None
    raise InvalidArgument(f"images[{index}]: expected a uint8 [28, 28] array, bytes or a path, "
                          f"got {type(item).__name__}")


def fashion_items(images) -> list[Any]:
    if isinstance(images, np.ndarray):
        if images.ndim == 2:
            return [images]
        if images.ndim != 3:
            raise InvalidArgument(f"images: need a uint8 [N, 28, 28] array, got shape {list(images.shape)}")
        return list(images)
    if isinstance(images, str | bytes | os.PathLike):
        return [images]
    return list(images)


# ----- chunked jobs -----------------------------------------------------------------------------

class Job:
    """One logical call split into requests of at most `chunk_size` items (and `max_bytes` bytes).

    `items[i]` is the request proto of item i, or the client-side error that item already has."""

    method: str = ""

    def __init__(self, items: list[Any], chunk_size: int, errors: Errors, max_bytes: int) -> None:
        if errors not in ("raise", "collect"):
            raise ValueError(f"errors: 'raise' or 'collect', got {errors!r}")
        self.items = items
        self.collect = errors == "collect"
        self.errors: dict[int, TfgateError] = {}
        self.outputs: list[Any] = [None] * len(items)
        self.versions = np.zeros(len(items), dtype=np.int64)
        self.served: list[ServedBy] = []
        for i, item in enumerate(items):
            if isinstance(item, TfgateError):
                if not self.collect:
                    raise item
                self.errors[i] = item
        self.chunks = self._split(chunk_size, max_bytes)

    def _split(self, chunk_size: int, max_bytes: int) -> list[list[int]]:
        chunks: list[list[int]] = []
        current: list[int] = []
        size = 0
        for i, item in enumerate(self.items):
            if i in self.errors:
                continue
            n = item.ByteSize() + 8
            if current and (len(current) >= chunk_size or size + n > max_bytes):
                chunks.append(current)
                current, size = [], 0
            current.append(i)
            size += n
        if current:
            chunks.append(current)
        return chunks

    def request(self, indices: Sequence[int]):
        raise NotImplementedError

    def parse(self, response) -> tuple[list[Any], ServedBy]:
        raise NotImplementedError

    def accept(self, indices: Sequence[int], response) -> None:
        outs, by = self.parse(response)
        if len(outs) != len(indices):
            raise TfgateError(f"{self.method}: {len(indices)} items sent, {len(outs)} answered")
        for i, out in zip(indices, outs, strict=True):
            self.outputs[i] = out
            self.versions[i] = by.version
        if by not in self.served:
            self.served.append(by)

    def failed(self, indices: list[int], err: TfgateError) -> list[int] | None:
        """Record a chunk's error. Returns the indices to send again (the chunk without the item the
        error names), or None when the chunk is done. In "raise" mode, raises the error."""
        err = relocate(err, indices)
        if not self.collect:
            raise err
        named = named_index(err)  # after relocate: the caller's own index
        if named is None or named not in indices:
            for i in indices:
                self.errors[i] = err
            return None
        self.errors[named] = err
        rest = [i for i in indices if i != named]
        return rest or None


class HousingJob(Job):
    method = "PredictHousing"

    def __init__(self, records, ref: pb.ModelRef, chunk_size: int, errors: Errors, max_bytes: int) -> None:
        items: list[Any] = []
        for i, row in enumerate(housing_rows(records)):
            try:
                items.append(housing_record(row, i))
            except InvalidArgument as exc:
                items.append(exc)
        if not items:
            raise InvalidArgument("records: at least one record is required")
        self.ref = ref
        super().__init__(items, chunk_size, errors, max_bytes)

    def request(self, indices):
        return pb.PredictHousingRequest(records=[self.items[i] for i in indices], model=self.ref)

    def parse(self, response):
        return list(response.median_house_values), served_by(response.served_by)

    def result(self) -> HousingPredictions:
        values = np.array([np.nan if v is None else v for v in self.outputs], dtype=np.float32)
        return HousingPredictions(values, self.versions, self.served, dict(sorted(self.errors.items())))


class FashionJob(Job):
    method = "ClassifyFashion"

    def __init__(self, images, top_k: int, ref: pb.ModelRef, chunk_size: int, errors: Errors,
                 max_bytes: int) -> None:
        items: list[Any] = []
        for i, item in enumerate(fashion_items(images)):
            try:
                items.append(fashion_image(item, i))
            except InvalidArgument as exc:
                items.append(exc)
        if not items:
            raise InvalidArgument("images: at least one image is required")
        self.top_k, self.ref = top_k, ref
        super().__init__(items, chunk_size, errors, max_bytes)

    def request(self, indices):
        return pb.ClassifyFashionRequest(images=[self.items[i] for i in indices], top_k=self.top_k,
                                         model=self.ref)

    def parse(self, response):
        tops = [[ClassScore(c.class_id, c.class_name, c.probability) for c in cl.classes]
                for cl in response.classifications]
        return tops, served_by(response.served_by)

    def result(self) -> FashionClassifications:
        tops = [t or [] for t in self.outputs]
        return FashionClassifications(tops, self.versions, self.served, dict(sorted(self.errors.items())))


class PredictJob(Job):
    """Generic Predict; with `chunk_size`, every input is split along its first axis and the outputs
    are concatenated along theirs."""

    method = "Predict"

    def __init__(self, inputs: Mapping[str, Any], ref: pb.ModelRef, output_filter: Sequence[str],
                 chunk_size: int | None) -> None:
        if not inputs:
            raise InvalidArgument("inputs: at least one input tensor is required")
        self.arrays = {k: np.asarray(v) for k, v in inputs.items()}
        self.ref, self.output_filter = ref, list(output_filter)
        rows = {a.shape[0] if a.ndim else None for a in self.arrays.values()}
        if chunk_size and (len(rows) != 1 or None in rows):
            raise InvalidArgument("inputs: chunking needs every input to have the same first dimension")
        n = rows.pop() if chunk_size else 1
        size = chunk_size or 1
        self.bounds = [(s, min(s + size, n)) for s in range(0, max(n, 1), size)] if chunk_size else [(0, 0)]
        self.collect, self.errors, self.served = False, {}, []
        self.outputs = [None] * len(self.bounds)
        self.chunks = [[i] for i in range(len(self.bounds))]

    def request(self, indices):
        (i,) = indices
        start, stop = self.bounds[i]
        whole = start == stop == 0
        req = pb.PredictRequest(model=self.ref, output_filter=self.output_filter)
        for name, arr in self.arrays.items():
            req.inputs[name].CopyFrom(to_tensor(arr if whole else arr[start:stop], name))
        return req

    def accept(self, indices, response) -> None:
        (i,) = indices
        self.outputs[i] = {k: from_tensor(t) for k, t in response.outputs.items()}
        by = served_by(response.served_by)
        if by not in self.served:
            self.served.append(by)

    def result(self) -> PredictResult:
        if len(self.outputs) == 1:
            return PredictResult(self.outputs[0], self.served)
        names = self.outputs[0].keys()
        return PredictResult({k: np.concatenate([o[k] for o in self.outputs]) for k in names}, self.served)


def model_info(m: pb.Model) -> ModelInfo:
    return ModelInfo(
        name=m.name,
        versions=[ModelVersionInfo(v.version, _STATES.get(v.state, str(v.state)), v.error_message)
                  for v in m.versions],
        labels=dict(sorted(m.labels.items())),
        traffic_split=dict(sorted(m.traffic_split.items())),
        targets=list(m.targets),
        healthy_targets=m.healthy_targets,
    )


class ClientBase:
    """Connection options of every client (see the subclasses for the calls)."""

    def __init__(
        self,
        target: str = "127.0.0.1:9000",
        *,
        tls: bool = False,
        ca_file: str | os.PathLike | None = None,
        cert_file: str | os.PathLike | None = None,
        key_file: str | os.PathLike | None = None,
        server_name: str | None = None,
        token: str | None = None,
        timeout: float | None = 30.0,
        retries: int = 3,
        backoff: float = 0.1,
        max_backoff: float = 2.0,
        compression: str | None = None,
        max_message_bytes: int = 64 * 1024 * 1024,
        wait_for_ready: bool = False,
        chunk_size: int = 512,
        concurrency: int = 4,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> None:
        """
        Args:
            target: `host:port` (or any gRPC target such as `dns:///gateway:9000`).
            tls: use TLS with the system's root certificates (implied by `ca_file`/`cert_file`).
            ca_file: PEM file of the CA that signed the server's certificate.
            cert_file, key_file: client certificate and key (PEM) for mutual TLS.
            server_name: name to check the server certificate against, when it differs from the target.
            token: bearer token, sent as `authorization: Bearer <token>`.
            timeout: default deadline in seconds of each request, retries included (None: no deadline).
            retries: extra attempts after UNAVAILABLE, with exponential backoff and jitter.
            backoff, max_backoff: first and largest backoff in seconds.
            compression: "gzip", "deflate" or None.
            max_message_bytes: largest message sent or received.
            wait_for_ready: wait for the channel to connect instead of failing fast while it cannot.
            chunk_size: most records/images per request; larger inputs are split and sent concurrently.
            concurrency: most requests of one call in flight at once.
            metadata: extra metadata sent with every call, e.g. `[("x-user-id", "42")]`.
        """
        self.options = ClientOptions(
            target=target, tls=tls, ca_file=ca_file, cert_file=cert_file, key_file=key_file,
            server_name=server_name, token=token, timeout=timeout, retries=retries, backoff=backoff,
            max_backoff=max_backoff, compression=compression, max_message_bytes=max_message_bytes,
            wait_for_ready=wait_for_ready, chunk_size=chunk_size, concurrency=concurrency,
            metadata=tuple(metadata))
        self._connect()

    def _connect(self) -> None:
        """Open the channel (subclasses)."""

    def _timeout(self, timeout: float | None) -> float | None:
        return self.options.timeout if timeout is None else timeout

    def _max_chunk_bytes(self) -> int:
        # Leave room for the request's other fields under the message limit.
        return max(1024, self.options.max_message_bytes - 64 * 1024)
