"""Gateway configuration: one YAML file, every field overridable from the environment.

An environment variable `TFGATE_GATEWAY__A__B=value` sets field `a.b` (path segments joined by a
double underscore, case-insensitive). The value is read as YAML, so `9000`, `true` and
`["x:1", "y:2"]` keep their types; a plain `x:1,y:2` is accepted where a list is expected.
Everything is validated at start-up and the first problem is reported with its dotted path.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .. import request_log

ENV_PREFIX = "TFGATE_GATEWAY__"


class ConfigError(ValueError):
    """A configuration problem, with the dotted path of the field at fault."""


@dataclass
class TlsConfig:
    """Server side: cert_file + key_file enable TLS; client_ca_file also requires client certificates."""

    cert_file: str = ""
    key_file: str = ""
    client_ca_file: str = ""


@dataclass
class BackendTlsConfig:
    """Towards backends: ca_file enables TLS; cert_file + key_file add a client certificate (mTLS)."""

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    server_name: str = ""  # overrides the name checked in the backend's certificate


@dataclass
class RetryConfig:
    max_attempts: int = 4
    initial_backoff_ms: float = 5.0
    max_backoff_ms: float = 200.0


@dataclass
class EjectionConfig:
    consecutive_failures: int = 3
    min_seconds: float = 1.0
    max_seconds: float = 30.0
    probe_interval_seconds: float = 0.5


@dataclass
class BackendConfig:
    tls: BackendTlsConfig = field(default_factory=BackendTlsConfig)
    keepalive_seconds: float = 20.0
    keepalive_timeout_seconds: float = 10.0
    retry: RetryConfig = field(default_factory=RetryConfig)
    ejection: EjectionConfig = field(default_factory=EjectionConfig)


@dataclass
class ShadowConfig:
    label: str = ""  # version label (or version number as text) that gets a copy of the traffic
    percent: float = 100.0


@dataclass
class ModelLoggingConfig:
    """Request logging of one model (TF Serving's `logging_config`); off while filename_prefix is empty."""

    filename_prefix: str = ""
    sampling_rate: float = 1.0


@dataclass
class RequestLogConfig:
    """The request-log files of every model: rotation by size and age, and the writer's queue."""

    max_file_bytes: int = request_log.DEFAULT_MAX_FILE_BYTES
    max_file_seconds: float = request_log.DEFAULT_MAX_FILE_SECONDS
    queue_records: int = request_log.DEFAULT_QUEUE_RECORDS


@dataclass
class ModelConfig:
    targets: list[str] = field(default_factory=list)
    backend_model_name: str = ""  # model name on the backends; defaults to the key
    deadline_ms: int = 10_000
    max_records: int = 1024
    max_message_bytes: int = 16 * 1024 * 1024
    max_tensor_bytes: int = 0  # a request's tensors once decoded; 0: 16 x max_message_bytes (validate)
    signature_name: str = "serving_default"
    labels: dict[str, int] = field(default_factory=dict)  # label -> version, resolved by the gateway
    split: dict[str, int] = field(default_factory=dict)  # label -> percent, sums to 100
    sticky_key: str = ""  # request metadata key whose value pins a caller to one label
    shadow: ShadowConfig = field(default_factory=ShadowConfig)
    class_names: list[str] = field(default_factory=list)  # ClassifyFashion; empty: the model's `all_classes`
    logging: ModelLoggingConfig = field(default_factory=ModelLoggingConfig)


@dataclass
class AuthConfig:
    tokens_file: str = ""  # empty: no authentication


@dataclass
class ShutdownConfig:
    readiness_seconds: float = 5.0  # NOT_SERVING announced this long before the listener closes
    grace_seconds: float = 20.0  # in-flight requests get this long to finish


@dataclass
class GatewayConfig:
    listen: str = ""
    metrics_listen: str = ""
    workers: int = 1
    max_concurrent_requests: int = 1024
    log_level: str = "info"
    tls: TlsConfig = field(default_factory=TlsConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    shutdown: ShutdownConfig = field(default_factory=ShutdownConfig)
    request_log: RequestLogConfig = field(default_factory=RequestLogConfig)
    models: dict[str, ModelConfig] = field(default_factory=dict)


def _apply_env(data: dict, environ: typing.Mapping[str, str]) -> None:
    for key, raw in sorted(environ.items()):
        if not key.upper().startswith(ENV_PREFIX):
            continue
        parts = [p for p in key[len(ENV_PREFIX):].split("__")]
        if not all(parts):
            raise ConfigError(f"environment variable {key}: empty path segment")
        node = data
        for part in parts[:-1]:
            match = next((k for k in node if str(k).lower() == part.lower()), part.lower())
            child = node.get(match)
            if child is None:
                child = node[match] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"environment variable {key}: {match} is not a mapping")
            node = child
        last = next((k for k in node if str(k).lower() == parts[-1].lower()), parts[-1].lower())
        try:
            node[last] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"environment variable {key}: not valid YAML: {exc}") from None


def _convert(tp, value, path: str):
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__}")
        hints = typing.get_type_hints(tp)
        names = {f.name for f in dataclasses.fields(tp)}
        unknown = sorted(str(k) for k in value if k not in names)
        if unknown:
            raise ConfigError(f"{path or 'config'}: unknown field(s) {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(names))}")
        kwargs = {k: _convert(hints[k], v, f"{path}.{k}" if path else k) for k, v in value.items()}
        return tp(**kwargs)
    if origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {type(value).__name__}")
        return [_convert(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _, item = typing.get_args(tp)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__}")
        return {str(k): _convert(item, v, f"{path}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if value is None:
            return ""
        if isinstance(value, bool | dict | list):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return str(value)
    if isinstance(tp, types.UnionType):  # pragma: no cover - no unions in the schema today
        raise ConfigError(f"{path}: unsupported type")
    raise ConfigError(f"{path}: unsupported type {tp}")


def _check_hostport(value: str, path: str, required: bool) -> None:
    if not value:
        if required:
            raise ConfigError(f"{path}: required (host:port)")
        return
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{path}: expected host:port, got {value!r}")


def _check_file(value: str, path: str) -> None:
    if value and not Path(value).is_file():
        raise ConfigError(f"{path}: file not found: {value}")


def validate(cfg: GatewayConfig) -> GatewayConfig:
    _check_hostport(cfg.listen, "listen", required=True)
    _check_hostport(cfg.metrics_listen, "metrics_listen", required=False)
    if cfg.workers < 1:
        raise ConfigError("workers: must be >= 1")
    if cfg.max_concurrent_requests < 1:
        raise ConfigError("max_concurrent_requests: must be >= 1")
    if cfg.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError("log_level: one of debug, info, warning, error")
    if bool(cfg.tls.cert_file) != bool(cfg.tls.key_file):
        raise ConfigError("tls: cert_file and key_file go together")
    if cfg.tls.client_ca_file and not cfg.tls.cert_file:
        raise ConfigError("tls.client_ca_file: needs tls.cert_file and tls.key_file")
    for name in ("cert_file", "key_file", "client_ca_file"):
        _check_file(getattr(cfg.tls, name), f"tls.{name}")
    bt = cfg.backend.tls
    if bool(bt.cert_file) != bool(bt.key_file):
        raise ConfigError("backend.tls: cert_file and key_file go together")
    if bt.cert_file and not bt.ca_file:
        raise ConfigError("backend.tls.cert_file: needs backend.tls.ca_file")
    for name in ("ca_file", "cert_file", "key_file"):
        _check_file(getattr(bt, name), f"backend.tls.{name}")
    _check_file(cfg.auth.tokens_file, "auth.tokens_file")
    if cfg.backend.retry.max_attempts < 1:
        raise ConfigError("backend.retry.max_attempts: must be >= 1")
    if cfg.backend.ejection.consecutive_failures < 1:
        raise ConfigError("backend.ejection.consecutive_failures: must be >= 1")
    if cfg.shutdown.readiness_seconds < 0 or cfg.shutdown.grace_seconds < 0:
        raise ConfigError("shutdown: durations must be >= 0")
    rl = cfg.request_log
    if rl.max_file_bytes < 1 or rl.max_file_seconds <= 0 or rl.queue_records < 1:
        raise ConfigError("request_log: max_file_bytes, max_file_seconds and queue_records must be > 0")
    if not cfg.models:
        raise ConfigError("models: at least one model is required")
    for name, m in cfg.models.items():
        p = f"models.{name}"
        if not m.targets:
            raise ConfigError(f"{p}.targets: at least one backend target is required")
        for i, t in enumerate(m.targets):
            bare = t.split("///", 1)[1] if t.startswith("dns:///") else t
            if "://" in bare or t.startswith(("ipv4:", "ipv6:", "unix:")):
                raise ConfigError(f"{p}.targets[{i}]: use host:port or dns:///host:port, got {t!r}")
            _check_hostport(bare, f"{p}.targets[{i}]", required=True)
        if not m.backend_model_name:
            m.backend_model_name = name
        if m.deadline_ms <= 0:
            raise ConfigError(f"{p}.deadline_ms: must be > 0")
        if m.max_records < 1:
            raise ConfigError(f"{p}.max_records: must be >= 1")
        if m.max_message_bytes < 1024:
            raise ConfigError(f"{p}.max_message_bytes: must be >= 1024")
        if m.max_tensor_bytes < 0:
            raise ConfigError(f"{p}.max_tensor_bytes: must be >= 0 (0: 16 x max_message_bytes)")
        if not m.max_tensor_bytes:
            # A tensor sent in full decodes to at most ~12x its wire size (an empty string: 2 bytes, a
            # 24-byte tf.string element); 16x keeps every such request under the bound, so only shapes
            # the bytes do not carry (TensorFlow fills a shape from one value) are refused.
            m.max_tensor_bytes = 16 * m.max_message_bytes
        for label, version in m.labels.items():
            if version < 1:
                raise ConfigError(f"{p}.labels.{label}: version must be >= 1")
        if m.split:
            if any(v < 0 for v in m.split.values()) or sum(m.split.values()) != 100:
                raise ConfigError(f"{p}.split: percentages must be >= 0 and sum to 100, "
                                  f"got {dict(m.split)}")
        if m.sticky_key and not m.split:
            raise ConfigError(f"{p}.sticky_key: needs a split")
        if m.sticky_key != m.sticky_key.lower():
            raise ConfigError(f"{p}.sticky_key: gRPC metadata keys are lowercase")
        if not 0 <= m.shadow.percent <= 100:
            raise ConfigError(f"{p}.shadow.percent: must be between 0 and 100")
        if not 0 <= m.logging.sampling_rate <= 1:
            raise ConfigError(f"{p}.logging.sampling_rate: must be between 0 and 1")
    return cfg


def load(path: str | os.PathLike | None, environ: typing.Mapping[str, str] | None = None) -> GatewayConfig:
    """Reads FILE (may be None: environment only), applies the environment, validates."""
    data: dict = {}
    if path is not None:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
    _apply_env(data, os.environ if environ is None else environ)
    return validate(_convert(GatewayConfig, data, ""))
