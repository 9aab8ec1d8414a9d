"""Reading TF Serving's text-format config files, with TF Serving's error lines.

`ModelServerConfig` ships in `tensorflow-serving-api` and is parsed with protobuf's own text_format.
`MonitoringConfig`, `SSLConfig` and `BatchingParameters` do not ship in that package (it carries only
apis/ and a few config/ modules), so those three files are read against small tables of the field
names, kinds and message type names that this server understands; nothing else of their .proto
definitions is reproduced. Unknown fields are errors, as with text_format.

A malformed file is reported the way TF Serving reports it: protobuf's C++ parser logs
`Error parsing text-format <type>: <line>:<column>: <message>` (1-based), and the server then says
`Invalid protobuf file: '<path>'`. Python's text_format words its errors otherwise and places some
elsewhere (an unknown field at its name, where C++ points at the token after it), so `_Parser`
takes the C++ parser's steps over the C++ tokenizer's tokens to find the same line, column and
words. tests/model_server/test_tf_serving_compat.py holds it to protoc's own C++ parser.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

from google.protobuf import descriptor as _descriptor
from google.protobuf import text_encoding, text_format

_INT64_VALUE = ("google.protobuf.Int64Value", {"value": "int64"})
_STRING_VALUE = ("google.protobuf.StringValue", {"value": "string"})
_BOOL_VALUE = ("google.protobuf.BoolValue", {"value": "bool"})

# A kind is a scalar ("bool", "int64", "string", "double"), a message (type name, {field: kind}) or
# [kind] for a repeated field. google.protobuf.*Value wrappers read as their value.
MONITORING_SCHEMA: dict[str, Any] = {
    "prometheus_config": ("tensorflow.serving.PrometheusConfig", {"enable": "bool", "path": "string"}),
}
SSL_SCHEMA: dict[str, Any] = {
    "server_key": "string", "server_cert": "string", "custom_ca": "string", "client_verify": "bool",
}
BATCHING_SCHEMA: dict[str, Any] = {
    "max_batch_size": _INT64_VALUE,
    "batch_timeout_micros": _INT64_VALUE,
    "max_enqueued_batches": _INT64_VALUE,
    "num_batch_threads": _INT64_VALUE,
    "thread_pool_name": _STRING_VALUE,
    "allowed_batch_sizes": ["int64"],
    "pad_variable_length_inputs": "bool",
    "enable_large_batch_splitting": _BOOL_VALUE,
    "max_execution_batch_size": _INT64_VALUE,
    "batch_padding_policy": _STRING_VALUE,
}


class TextProtoError(ValueError):
    """A file protobuf's C++ parser refuses: `lines` are what it logs, one per error it records."""

    def __init__(self, type_name: str, errors: list[tuple[int, int, str]]):
        self.type_name = type_name
        self.errors = errors  # (line, column, message), 1-based
        super().__init__("; ".join(f"{ln}:{col}: {msg}" for ln, col, msg in errors))

    @property
    def lines(self) -> list[str]:
        return [f"Error parsing text-format {self.type_name}: {ln}:{col}: {msg}" for ln, col, msg in self.errors]


# ---- field tables: from a message descriptor or from a schema above
@dataclasses.dataclass
class _Field:
    name: str
    kind: str  # int32 int64 uint32 uint64 float double string bytes bool enum message
    repeated: bool = False
    type: _Type | None = None
    enum: Any = None  # EnumDescriptor
    oneof: str | None = None
    presence: bool = False


class _Type:
    def __init__(self, full_name: str, build):
        self.full_name = full_name
        self._build = build
        self._fields: dict[str, _Field] | None = None
        self.is_any = full_name == "google.protobuf.Any"

    @property
    def fields(self) -> dict[str, _Field]:
        if self._fields is None:  # lazily: message types may refer to themselves
            self._fields = self._build()
        return self._fields


_FD = _descriptor.FieldDescriptor
_KIND = {
    _FD.TYPE_INT32: "int32", _FD.TYPE_SINT32: "int32", _FD.TYPE_SFIXED32: "int32",
    _FD.TYPE_INT64: "int64", _FD.TYPE_SINT64: "int64", _FD.TYPE_SFIXED64: "int64",
    _FD.TYPE_UINT32: "uint32", _FD.TYPE_FIXED32: "uint32", _FD.TYPE_UINT64: "uint64", _FD.TYPE_FIXED64: "uint64",
    _FD.TYPE_FLOAT: "float", _FD.TYPE_DOUBLE: "double", _FD.TYPE_STRING: "string", _FD.TYPE_BYTES: "bytes",
    _FD.TYPE_BOOL: "bool", _FD.TYPE_ENUM: "enum", _FD.TYPE_MESSAGE: "message", _FD.TYPE_GROUP: "message",
}


def _type_of_descriptor(desc, cache: dict) -> _Type:
    if desc.full_name not in cache:
        def build():
            return {f.name: _Field(
                f.name, _KIND[f.type], f.is_repeated,
                _type_of_descriptor(f.message_type, cache) if f.message_type else None,
                f.enum_type, f.containing_oneof.name if f.containing_oneof else None, f.has_presence)
                for f in desc.fields}
        cache[desc.full_name] = _Type(desc.full_name, build)
    return cache[desc.full_name]


def _type_of_schema(type_name: str, schema: dict[str, Any]) -> _Type:
    def field(name: str, kind: Any) -> _Field:
        repeated = isinstance(kind, list)
        kind = kind[0] if repeated else kind
        if isinstance(kind, tuple):
            return _Field(name, "message", repeated, _type_of_schema(*kind), presence=not repeated)
        return _Field(name, kind, repeated)
    return _Type(type_name, lambda: {n: field(n, k) for n, k in schema.items()})


# ---- protobuf's C++ tokenizer (io/tokenizer.cc), positions 0-based, tabs to the next multiple of 8
@dataclasses.dataclass
class _Token:
    kind: str  # ident int float string symbol end
    text: str
    line: int
    col: int
    errors: int  # tokenizer errors recorded once this token was read


_WHITESPACE = frozenset(b" \t\n\r\v\f")
_LETTER = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_DIGIT = frozenset(b"0123456789")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_OCTAL = frozenset(b"01234567")
_OCTAL_TEXT = tuple("01234567")
_ESCAPE = frozenset(b"abfnrtv\\?'\"")


class _Tokenizer:
    def __init__(self, data: bytes):
        self.data, self.i, self.line, self.col = data, 0, 0, 0
        self.errors: list[tuple[int, int, str]] = []

    def _at(self, k: int = 0) -> int:
        j = self.i + k
        return self.data[j] if j < len(self.data) else -1

    def _next(self) -> None:
        c = self.data[self.i]
        self.i += 1
        if c == 10:
            self.line, self.col = self.line + 1, 0
        elif c == 9:
            self.col += 8 - self.col % 8
        else:
            self.col += 1

    def _take(self, chars) -> bool:
        if self._at() >= 0 and self._at() in chars:
            self._next()
            return True
        return False

    def _error(self, msg: str) -> None:
        self.errors.append((self.line, self.col, msg))

    def tokens(self) -> list[_Token]:
        out = []
        while True:
            tok = self._token()
            out.append(tok)
            if tok.kind == "end":
                return out

    def _token(self) -> _Token:
        while True:
            c = self._at()
            if c in _WHITESPACE:
                self._next()
            elif c == ord("#"):
                while self._at() not in (-1, 10):
                    self._next()
            elif 0 <= c < 32:
                self._error("Invalid control characters encountered in text.")
                while 0 <= self._at() < 32 and self._at() not in _WHITESPACE:
                    self._next()
            else:
                break
        line, col, start = self.line, self.col, self.i
        c = self._at()
        if c == -1:
            kind = "end"
        elif c in _LETTER:
            while self._at() in _LETTER or self._at() in _DIGIT:
                self._next()
            kind = "ident"
        elif c in _DIGIT or (c == ord(".") and self._at(1) in _DIGIT):
            kind = self._number()
        elif c in (ord('"'), ord("'")):
            self._string(c)
            kind = "string"
        else:
            if c & 0x80:
                self._error(f"Interpreting non ascii codepoint {c}.")
            self._next()
            kind = "symbol"
        text = self.data[start:self.i].decode("utf-8", "replace")
        return _Token(kind, text, line, col, len(self.errors))

    def _some(self, chars, error: str) -> None:
        if self._at() not in chars:
            self._error(error)
        while self._at() in chars:
            self._next()

    def _number(self) -> str:
        zero, dot = self._at() == ord("0"), self._at() == ord(".")
        self._next()
        is_float = False
        if zero and self._take(b"xX"):
            self._some(_HEX, '"0x" must be followed by hex digits.')
        elif zero and self._at() in _DIGIT:
            while self._at() in _OCTAL:
                self._next()
            if self._at() in _DIGIT:
                self._error("Numbers starting with leading zero must be in octal.")
                while self._at() in _DIGIT:
                    self._next()
        else:
            is_float = dot
            while self._at() in _DIGIT:
                self._next()
            if not dot and self._take(b"."):
                is_float = True
                while self._at() in _DIGIT:
                    self._next()
            if self._take(b"eE"):
                is_float = True
                self._take(b"-+")
                self._some(_DIGIT, '"e" must be followed by exponent.')
            if self._take(b"fF"):
                is_float = True
        if self._at() in _LETTER:
            self._error("Need space between number and identifier.")
        elif self._at() == ord("."):
            self._error("Already saw decimal point or exponent; can't have another one." if is_float
                        else "Hex and octal numbers must be integers.")
        return "float" if is_float else "int"

    def _string(self, quote: int) -> None:
        self._next()
        while True:
            c = self._at()
            if c in (-1, 0):
                self._error("Unexpected end of string.")
                return
            if c == 10:
                self._error('Multiline strings are not allowed. Did you miss a "?.')
                return
            if c == ord("\\"):
                self._next()
                if self._take(_ESCAPE) or self._take(_OCTAL):
                    pass
                elif self._take(b"x"):
                    if not self._take(_HEX):
                        self._error("Expected hex digits for escape sequence.")
                elif self._take(b"u"):
                    if not all(self._take(_HEX) for _ in range(4)):
                        self._error("Expected four hex digits for \\u escape sequence.")
                elif self._take(b"U"):
                    if not all(self._take(_HEX) for _ in range(8)):
                        self._error("Expected eight hex digits up to 10ffff for \\U escape sequence")
                else:
                    self._error("Invalid escape sequence in string literal.")
                continue
            self._next()
            if c == quote:
                return


# ---- protobuf's C++ text parser (text_format.cc ParserImpl), for its errors (and values, for schemas)
class _Stop(Exception):
    pass


class _Unsupported(Exception):
    """An expanded google.protobuf.Any, which these steps do not follow: Python's parser decides."""


_INT_MAX = {"int32": 2**31 - 1, "int64": 2**63 - 1, "uint32": 2**32 - 1, "uint64": 2**64 - 1}
_DEFAULT = {"int32": 0, "int64": 0, "uint32": 0, "uint64": 0, "float": 0.0, "double": 0.0, "string": "",
            "bytes": b"", "bool": False}


def _parse_int(text: str) -> int | None:
    """C++ Tokenizer::ParseInteger: 0x hex, a leading 0 octal, else decimal; None if not valid."""
    base, digits = 10, text
    if text[:2] in ("0x", "0X"):
        base, digits = 16, text[2:]
    elif text[:1] == "0":
        base = 8
    value = 0
    for ch in digits:
        d = int(ch, 36) if ch.isalnum() else 99
        if d >= base:
            return None
        value = value * base + d
    return value


class _Parser:
    def __init__(self, data: bytes, root: _Type):
        tokenizer = _Tokenizer(data)
        self.tokens = tokenizer.tokens()
        self.token_errors = tokenizer.errors
        self.k = 0
        self.root = root
        self.errors: list[tuple[int, int, str]] = []

    # Tokens
    @property
    def cur(self) -> _Token:
        return self.tokens[self.k]

    def _advance(self) -> None:
        self.k = min(self.k + 1, len(self.tokens) - 1)

    def _error(self, msg: str) -> None:
        """C++ stops at its first parse error; the tokenizer's errors up to the token it stopped at
        were logged before it."""
        tok = self.cur
        self.errors = [(ln + 1, col + 1, m) for ln, col, m in self.token_errors[:tok.errors]]
        self.errors.append((tok.line + 1, tok.col + 1, msg))
        raise _Stop

    def _try(self, text: str) -> bool:
        if self.cur.text == text:
            self._advance()
            return True
        return False

    def _consume(self, text: str) -> None:
        if not self._try(text):
            self._error(f'Expected "{text}", found "{self.cur.text}".')

    def _identifier(self) -> str:
        if self.cur.kind != "ident":
            self._error(f"Expected identifier, got: {self.cur.text}")
        text = self.cur.text
        self._advance()
        return text

    def _unsigned(self, max_value: int) -> int:
        if self.cur.kind != "int":
            self._error(f"Expected integer, got: {self.cur.text}")
        value = _parse_int(self.cur.text)
        if value is None or value > max_value:
            self._error(f"Integer out of range ({self.cur.text})")
        self._advance()
        return value

    def _signed(self, max_value: int) -> int:
        negative = self._try("-")
        value = self._unsigned(max_value + negative)  # one more negative than positive
        return -value if negative else value

    def _double(self) -> float:
        negative = self._try("-")
        tok = self.cur
        if tok.kind == "int":
            if tok.text[:2] in ("0x", "0X") or (tok.text[:1] == "0" and tok.text[1:2] in _OCTAL_TEXT):
                self._error(f"Expect a decimal number, got: {tok.text}")
            value = float(_parse_int(tok.text) or 0)
        elif tok.kind == "float":
            try:
                value = float(tok.text.rstrip("fF"))
            except ValueError:  # "1e", "1.2.3": the tokenizer has already recorded why
                value = 0.0
        elif tok.kind == "ident":
            if tok.text.lower() not in ("inf", "infinity", "nan"):
                self._error(f"Expected double, got: {tok.text.lower()}")
            value = float(tok.text.lower().replace("infinity", "inf"))
        else:
            self._error(f"Expected double, got: {tok.text}")
        self._advance()
        return -value if negative else value

    def _string(self) -> bytes:
        if self.cur.kind != "string":
            self._error(f"Expected string, got: {self.cur.text}")
        out = b""
        while self.cur.kind == "string":
            text = self.cur.text
            body = text[1:-1] if len(text) > 1 and text[-1] == text[0] else text[1:]
            with warnings.catch_warnings():  # a bad escape: the tokenizer has already recorded it
                warnings.simplefilter("ignore", DeprecationWarning)
                try:
                    out += text_encoding.CUnescape(body)
                except ValueError:
                    pass
            self._advance()
        return out

    # Messages: `state` maps a field name to its value (a list when repeated, a dict for a message)
    def parse(self) -> dict:
        state: dict = {}
        try:
            while self.cur.kind != "end":
                self._field(self.root, state)
        except _Stop:
            return state
        # No parse error; any tokenizer error still fails the parse.
        self.errors = [(ln + 1, col + 1, m) for ln, col, m in self.token_errors]
        return state

    def _message(self, mtype: _Type, state: dict) -> None:
        close = ">" if self._try("<") else None
        if close is None:
            self._consume("{")
            close = "}"
        while self.cur.text not in (">", "}"):
            self._field(mtype, state)
        self._consume(close)

    def _field(self, mtype: _Type, state: dict) -> None:
        if self.cur.text == "[":  # an extension: none of these messages has any
            if mtype.is_any:
                raise _Unsupported
            self._advance()
            name = self._identifier()
            while self._try("."):
                name += "." + self._identifier()
            self._consume("]")
            self._error(f'Extension "{name}" is not defined or is not an extension of "{mtype.full_name}".')
        name = self._identifier()
        field = mtype.fields.get(name)
        if field is None:
            self._error(f'Message type "{mtype.full_name}" has no field named "{name}".')
        if not field.repeated and self._has(field, state):
            self._error(f'Non-repeated field "{name}" is specified multiple times.')
        if field.oneof is not None:
            other = next((f.name for f in mtype.fields.values()
                          if f.oneof == field.oneof and f.name != name and f.name in state), None)
            if other is not None:
                self._error(f'Field "{name}" is specified along with field "{other}", another member of '
                            f'oneof "{field.oneof}".')
        if field.kind == "message":
            self._try(":")
        else:
            self._consume(":")
        if field.repeated and self._try("["):
            values = state.setdefault(name, [])
            if not self._try("]"):
                while True:
                    values.append(self._value(field))
                    if self._try("]"):
                        break
                    self._consume(",")
        elif field.repeated:
            state.setdefault(name, []).append(self._value(field))
        else:
            state[name] = self._value(field)
        self._try(";") or self._try(",")

    @staticmethod
    def _has(field: _Field, state: dict) -> bool:
        # C++ HasField: set at all for fields with presence; otherwise set to a value other than the default.
        if field.name not in state:
            return False
        if field.presence or field.kind == "message":
            return True
        value = state[field.name]
        return value != (0 if field.kind == "enum" else _DEFAULT[field.kind])

    def _value(self, field: _Field) -> Any:
        kind = field.kind
        if kind == "message":
            sub: dict = {}
            if field.type.is_any and self.cur.text == "[":
                raise _Unsupported
            self._message(field.type, sub)
            return sub
        if kind in ("int32", "int64"):
            return self._signed(_INT_MAX[kind])
        if kind in ("uint32", "uint64"):
            return self._unsigned(_INT_MAX[kind])
        if kind in ("float", "double"):
            return self._double()
        if kind in ("string", "bytes"):
            raw = self._string()
            return raw if kind == "bytes" else raw.decode("utf-8", "replace")
        if kind == "bool":
            if self.cur.kind == "int":
                return bool(self._unsigned(1))
            value = self._identifier()
            if value in ("true", "True", "t"):
                return True
            if value in ("false", "False", "f"):
                return False
            self._error(f'Invalid value for boolean field "{field.name}". Value: "{value}".')
        # enum
        if self.cur.kind == "ident":
            value = self._identifier()
            found = field.enum.values_by_name.get(value)
            number = found.number if found else None
        elif self.cur.text == "-" or self.cur.kind == "int":
            number = self._signed(2**31 - 1)
            value = str(number)
            found = field.enum.values_by_number.get(number)
            if found is None and not field.enum.is_closed:
                return number
        else:
            self._error(f"Expected integer or identifier, got: {self.cur.text}")
        if found is None:
            self._error(f'Unknown enumeration value of "{value}" for field "{field.name}".')
        return number


# ---- readers
def _unwrap(mtype: _Type, state: dict) -> dict:
    """Schema values as the server uses them: wrappers as their value (default when absent)."""
    out: dict[str, Any] = {}
    for name, value in state.items():
        field = mtype.fields[name]
        if field.kind == "message":
            sub = field.type
            if sub.full_name.startswith("google.protobuf.") and sub.full_name.endswith("Value"):
                inner = sub.fields["value"].kind
                conv = [v.get("value", _DEFAULT[inner]) for v in (value if field.repeated else [value])]
            else:
                conv = [_unwrap(sub, v) for v in (value if field.repeated else [value])]
            out[name] = conv if field.repeated else conv[0]
        else:
            out[name] = value
    return out


def parse(text: str | bytes, schema: dict[str, Any], type_name: str) -> dict[str, Any]:
    data = text.encode("utf-8") if isinstance(text, str) else text
    mtype = _type_of_schema(type_name, schema)
    parser = _Parser(data, mtype)
    state = parser.parse()
    if parser.errors:
        raise TextProtoError(type_name, parser.errors)
    return _unwrap(mtype, state)


def read(path: str, schema: dict[str, Any], type_name: str) -> dict[str, Any]:
    with open(path, "rb") as f:
        return parse(f.read(), schema, type_name)


def parse_message(data: bytes, message) -> None:
    """Parse text `data` into `message` with protobuf's text_format. What protobuf's C++ parser (TF
    Serving's) refuses is refused, as a TextProtoError placed and worded as that parser has it."""
    parser = _Parser(data, _type_of_descriptor(message.DESCRIPTOR, {}))
    try:
        parser.parse()
    except _Unsupported:
        pass
    if parser.errors:
        raise TextProtoError(message.DESCRIPTOR.full_name, parser.errors)
    try:
        text_format.Parse(data.decode("utf-8"), message)
    except (text_format.ParseError, UnicodeDecodeError) as e:
        # A case the C++ steps above do not follow: Python's own position and words.
        if isinstance(e, UnicodeDecodeError):
            errors = [(1, 1, f"The file is not UTF-8: {e}")]
        else:
            msg = str(e).split(" : ", 1)[-1]
            if msg.startswith("'") and "': " in msg:  # the quoted source line Python puts first
                msg = msg.split("': ", 1)[1]
            errors = [(e.GetLine() or 1, e.GetColumn() or 1, msg)]
        raise TextProtoError(message.DESCRIPTOR.full_name, errors) from None


def parse_model_server_config(data: bytes):
    from tensorflow_serving.config import model_server_config_pb2

    cfg = model_server_config_pb2.ModelServerConfig()
    parse_message(data, cfg)
    return cfg


def read_model_server_config(path: str):
    with open(path, "rb") as f:
        return parse_model_server_config(f.read())
