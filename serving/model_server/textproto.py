"""Reading TF Serving's text-format config files.

`ModelServerConfig` ships in `tensorflow-serving-api` and is parsed with protobuf's own text_format.
`MonitoringConfig`, `SSLConfig` and `BatchingParameters` do not ship in that package (it carries only
apis/ and a few config/ modules), so those three files are read with protobuf's text-format
*tokenizer* against a small table of the field names and kinds that this server understands;
nothing of their .proto definitions is reproduced. Unknown fields are errors, as with text_format.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import text_format

# kind: "bool" | "int" | "str" | "float" | nested schema dict; ("wrap", kind) = google.protobuf.*Value;
# a list [kind] = repeated.
MONITORING_SCHEMA: dict[str, Any] = {
    "prometheus_config": {"enable": "bool", "path": "str"},
}
SSL_SCHEMA: dict[str, Any] = {
    "server_key": "str", "server_cert": "str", "custom_ca": "str", "client_verify": "bool",
}
BATCHING_SCHEMA: dict[str, Any] = {
    "max_batch_size": ("wrap", "int"),
    "batch_timeout_micros": ("wrap", "int"),
    "max_enqueued_batches": ("wrap", "int"),
    "num_batch_threads": ("wrap", "int"),
    "thread_pool_name": ("wrap", "str"),
    "allowed_batch_sizes": ["int"],
    "pad_variable_length_inputs": "bool",
    "enable_large_batch_splitting": ("wrap", "bool"),
    "max_execution_batch_size": ("wrap", "int"),
    "batch_padding_policy": ("wrap", "str"),
}


class TextProtoError(ValueError):
    pass


def _scalar(tok: text_format.Tokenizer, kind: str, field: str) -> Any:
    try:
        if kind == "str":
            return tok.ConsumeString()
        if kind == "bool":
            return tok.ConsumeBool()
        if kind == "int":
            return tok.ConsumeInteger()
        if kind == "float":
            return tok.ConsumeFloat()
    except text_format.ParseError as e:
        raise TextProtoError(f"{e} (field {field})") from None
    raise TextProtoError(f"bad schema kind {kind}")


def _message(tok: text_format.Tokenizer, schema: dict[str, Any], type_name: str, end: str | None) -> dict:
    out: dict[str, Any] = {}
    while True:
        if end is not None and tok.TryConsume(end):
            return out
        if tok.AtEnd():
            if end is not None:
                raise TextProtoError(f'Expected "{end}" in {type_name}')
            return out
        name = tok.ConsumeIdentifier()
        if name not in schema:
            raise TextProtoError(f'{tok._line + 1}:{tok._column}: Message type "{type_name}" has no field '
                                 f'named "{name}".')
        kind = schema[name]
        repeated = isinstance(kind, list)
        item = kind[0] if repeated else kind
        if isinstance(item, dict) or isinstance(item, tuple):
            tok.TryConsume(":")
            close = ">" if tok.TryConsume("<") else "}"
            if close == "}":
                tok.Consume("{")
            if isinstance(item, tuple):  # google.protobuf wrapper: { value: x }
                inner = _message(tok, {"value": item[1]}, "google.protobuf.Value", close)
                value: Any = inner.get("value", {"int": 0, "str": "", "bool": False}[item[1]])
            else:
                value = _message(tok, item, f"{type_name}.{name}", close)
        else:
            tok.Consume(":")
            if repeated and tok.TryConsume("["):
                vals = []
                while not tok.TryConsume("]"):
                    vals.append(_scalar(tok, item, name))
                    tok.TryConsume(",")
                out.setdefault(name, []).extend(vals)
                tok.TryConsume(",") or tok.TryConsume(";")
                continue
            value = _scalar(tok, item, name)
        if repeated:
            out.setdefault(name, []).append(value)
        else:
            out[name] = value
        tok.TryConsume(",") or tok.TryConsume(";")


def parse(text: str, schema: dict[str, Any], type_name: str) -> dict[str, Any]:
    try:
        tok = text_format.Tokenizer(text.splitlines())
        return _message(tok, schema, type_name, None)
    except text_format.ParseError as e:
        raise TextProtoError(str(e)) from None


def read(path: str, schema: dict[str, Any], type_name: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return parse(f.read(), schema, type_name)


def read_model_server_config(path: str):
    from tensorflow_serving.config import model_server_config_pb2

    cfg = model_server_config_pb2.ModelServerConfig()
    with open(path, encoding="utf-8") as f:
        text_format.Parse(f.read(), cfg)
    return cfg
