"""Just enough protobuf wire-format reading to route a TF Serving request without parsing it.

Every TF Serving request routed by model carries `ModelSpec model_spec = 1` (MultiInference:
inside `tasks = 1`). The pass-through reads that one field, and when it must change the
model spec (traffic split, backend model name) it splices a new field 1 in front of the other
bytes, which stay untouched.
"""

from __future__ import annotations

from dataclasses import dataclass


class WireError(ValueError):
    pass


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise WireError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError("varint too long")


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def fields(buf: bytes):
    """Yields (number, wire_type, value_start, value_end, field_start) for each top-level field."""
    pos = 0
    n = len(buf)
    while pos < n:
        start = pos
        key, pos = _varint(buf, pos)
        number, wtype = key >> 3, key & 7
        if wtype == 0:
            _, end = _varint(buf, pos)
            yield number, wtype, pos, end, start
        elif wtype == 2:
            length, pos = _varint(buf, pos)
            end = pos + length
            if end > n:
                raise WireError("truncated field")
            yield number, wtype, pos, end, start
        elif wtype == 1:
            end = pos + 8
            yield number, wtype, pos, end, start
        elif wtype == 5:
            end = pos + 4
            yield number, wtype, pos, end, start
        else:
            raise WireError(f"unsupported wire type {wtype}")
        if end > n:
            raise WireError("truncated field")
        pos = end


def get_bytes(buf: bytes, number: int) -> bytes | None:
    """The last occurrence of length-delimited field `number` (proto3 'last one wins')."""
    found = None
    for num, wtype, s, e, _ in fields(buf):
        if num == number and wtype == 2:
            found = buf[s:e]
    return found


@dataclass
class ModelSpec:
    name: str = ""
    version: int | None = None
    label: str = ""
    signature_name: str = ""

    def encode(self) -> bytes:
        out = bytearray()
        if self.name:
            b = self.name.encode()
            out += b"\x0a" + _encode_varint(len(b)) + b
        if self.version is not None:
            inner = b"\x08" + _encode_varint(self.version & 0xFFFFFFFFFFFFFFFF) if self.version else b""
            out += b"\x12" + _encode_varint(len(inner)) + inner
        if self.signature_name:
            b = self.signature_name.encode()
            out += b"\x1a" + _encode_varint(len(b)) + b
        if self.label and self.version is None:
            b = self.label.encode()
            out += b"\x22" + _encode_varint(len(b)) + b
        return bytes(out)


def parse_model_spec(buf: bytes) -> ModelSpec:
    spec = ModelSpec()
    for num, wtype, s, e, _ in fields(buf):
        if wtype != 2:
            continue
        if num == 1:
            spec.name = buf[s:e].decode("utf-8", "replace")
        elif num == 2:
            version = 0
            for n2, w2, s2, _e2, _ in fields(buf[s:e]):
                if n2 == 1 and w2 == 0:
                    version, _ = _varint(buf[s:e], s2)
            spec.version, spec.label = version, ""
        elif num == 3:
            spec.signature_name = buf[s:e].decode("utf-8", "replace")
        elif num == 4:
            spec.label, spec.version = buf[s:e].decode("utf-8", "replace"), None
    return spec


def request_model_spec(buf: bytes, nested: bool = False) -> ModelSpec:
    """ModelSpec of a TF Serving request; nested=True for MultiInferenceRequest (tasks[0])."""
    outer = get_bytes(buf, 1)
    if outer is None:
        return ModelSpec()
    if nested:
        outer = get_bytes(outer, 1)
        if outer is None:
            return ModelSpec()
    return parse_model_spec(outer)


def replace_model_spec(buf: bytes, spec: ModelSpec) -> bytes:
    """The request with every field 1 removed and `spec` in front; other bytes are copied as is."""
    payload = spec.encode()
    parts = [b"\x0a" + _encode_varint(len(payload)) + payload]
    last = 0
    for num, _wtype, _s, e, start in fields(buf):
        if num == 1:
            parts.append(buf[last:start])
            last = e
    parts.append(buf[last:])
    return b"".join(parts)
