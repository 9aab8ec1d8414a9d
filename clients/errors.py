"""Exceptions raised by the tfgate clients: one class per gRPC status code, all under `TfgateError`.

Example:
    >>> from clients import GatewayClient, NotFound
    >>> try:
    ...     GatewayClient("127.0.0.1:9000").predict("no-such-model", {"x": x})
    ... except NotFound as err:
    ...     print(err.code, err.message)
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import grpc


class TfgateError(Exception):
    """Base of every client error. `code` is the gRPC status, `message` the server's text,
    `request_id` the gateway's `x-request-id` when it sent one.

    Example:
        >>> try:
        ...     client.list_models()
        ... except TfgateError as err:
        ...     print(err.code.name, err.message, err.request_id)
    """

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, *, code: grpc.StatusCode | None = None, request_id: str = "") -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.request_id = request_id

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"

    def with_message(self, message: str) -> TfgateError:
        """The same error (class, code, request id) with another message."""
        return type(self)(message, code=self.code, request_id=self.request_id)


class Cancelled(TfgateError):
    """The call was cancelled (CANCELLED)."""

    code = grpc.StatusCode.CANCELLED


class Unknown(TfgateError):
    """The server raised an error it did not classify (UNKNOWN)."""

    code = grpc.StatusCode.UNKNOWN


class InvalidArgument(TfgateError, ValueError):
    """Malformed input; the message names the field, e.g. `records[3].median_income` (INVALID_ARGUMENT).
    Also raised before sending when the client itself finds the input unusable."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(TfgateError, TimeoutError):
    """The deadline ran out before the answer came (DEADLINE_EXCEEDED)."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFound(TfgateError, LookupError):
    """The model (or version/label) is not configured or not loaded (NOT_FOUND)."""

    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(TfgateError):
    """ALREADY_EXISTS."""

    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(TfgateError):
    """The token may not use this model (PERMISSION_DENIED)."""

    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(TfgateError):
    """The gateway is at its concurrency limit, or a message is over the size limit (RESOURCE_EXHAUSTED)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(TfgateError):
    """The model cannot answer this request as configured, e.g. a missing output (FAILED_PRECONDITION)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(TfgateError):
    """ABORTED."""

    code = grpc.StatusCode.ABORTED


class OutOfRange(TfgateError):
    """OUT_OF_RANGE."""

    code = grpc.StatusCode.OUT_OF_RANGE


class Unimplemented(TfgateError):
    """The server does not implement this method (UNIMPLEMENTED)."""

    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(TfgateError):
    """INTERNAL."""

    code = grpc.StatusCode.INTERNAL


class Unavailable(TfgateError, ConnectionError):
    """No server or backend answered, after the client's retries (UNAVAILABLE)."""

    code = grpc.StatusCode.UNAVAILABLE


class DataLoss(TfgateError):
    """DATA_LOSS."""

    code = grpc.StatusCode.DATA_LOSS


class Unauthenticated(TfgateError):
    """Missing or unknown bearer token (UNAUTHENTICATED)."""

    code = grpc.StatusCode.UNAUTHENTICATED


ERRORS: dict[grpc.StatusCode, type[TfgateError]] = {
    cls.code: cls
    for cls in (Cancelled, Unknown, InvalidArgument, DeadlineExceeded, NotFound, AlreadyExists,
                PermissionDenied, ResourceExhausted, FailedPrecondition, Aborted, OutOfRange,
                Unimplemented, Internal, Unavailable, DataLoss, Unauthenticated)
}


def _request_id(metadata) -> str:
    for key, value in metadata or ():
        if key == "x-request-id":
            return value.decode() if isinstance(value, bytes) else str(value)
    return ""


def from_rpc_error(exc: grpc.RpcError) -> TfgateError:
    """The `TfgateError` subclass for a failed call (sync `grpc.RpcError` or `grpc.aio.AioRpcError`).

    Example:
        >>> try:
        ...     stub.ListModels(request)
        ... except grpc.RpcError as exc:
        ...     raise from_rpc_error(exc) from None
    """
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = (exc.details() if hasattr(exc, "details") else None) or str(code)
    try:
        request_id = _request_id(exc.trailing_metadata())
    except Exception:  # metadata is optional; a failed call may have none
        request_id = ""
    cls = ERRORS.get(code, Unknown)
    return cls(details, code=code, request_id=request_id)


_INDEXED = re.compile(r"\b(records|images)\[(\d+)\]")


def named_index(err: TfgateError) -> int | None:
    """The item index an INVALID_ARGUMENT message names (`records[3].x` -> 3), else None."""
    if not isinstance(err, InvalidArgument):
        return None
    found = _INDEXED.search(err.message)
    return int(found.group(2)) if found else None


def relocate(err: TfgateError, indices: Sequence[int]) -> TfgateError:
    """Rewrite `records[i]`/`images[i]` of a chunk's error to the caller's own indices."""
    def swap(m: re.Match) -> str:
        i = int(m.group(2))
        return f"{m.group(1)}[{indices[i]}]" if i < len(indices) else m.group(0)

    message = _INDEXED.sub(swap, err.message)
    return err if message == err.message else err.with_message(message)
