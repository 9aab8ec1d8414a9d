"""`tensorflow_model_server`'s command-line flags, parsed the way absl/TF's flag parser does.

`--flag=value` and `--flag value`; a bool also takes a bare `--flag` or `--flag=true/false/1/0`.
Flags that exist in TF Serving but have no meaning here are accepted with one warning line each;
an unknown flag is an error (exit 2), as in TF Serving.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any


@dataclasses.dataclass(frozen=True)
class Flag:
    name: str
    type: type
    default: Any
    help: str
    supported: bool = True


_F = Flag
FLAGS: list[Flag] = [
    _F("port", int, 8500, "Port to listen on for gRPC API"),
    _F("grpc_socket_path", str, "", "If non-empty, listen to a UNIX socket for gRPC API on the given path. "
       "Can be either relative or absolute path."),
    _F("rest_api_port", int, 0, "Port to listen on for HTTP/REST API. If set to zero HTTP/REST API will not "
       "be exported. This port must be different than the one specified in --port."),
    _F("rest_api_num_threads", int, 0, "Number of threads for HTTP/REST API processing. If not set, will be "
       "auto set based on number of CPUs.", False),
    _F("rest_api_timeout_in_ms", int, 30000, "Timeout for HTTP/REST API calls."),
    _F("rest_api_enable_cors_support", bool, False, "Enable CORS headers in response"),
    _F("enable_batching", bool, False, "enable batching"),
    _F("allow_version_labels_for_unavailable_models", bool, False, "If true, allows assigning unused version "
       "labels to models that are not available yet."),
    _F("batching_parameters_file", str, "", "If non-empty, read an ascii BatchingParameters protobuf from the "
       "supplied file name and use the contained values instead of the defaults."),
    _F("enable_per_model_batching_parameters", bool, False, "Enables model specific batching params like "
       "batch sizes, timeouts, batching feature flags to be read from `batching_params.pbtxt` file present "
       "in SavedModel dir of the model."),
    _F("model_config_file", str, "", "If non-empty, read an ascii ModelServerConfig protobuf from the supplied "
       "file name, and serve the models in that file. This config file can be used to specify multiple "
       "models to serve and other advanced parameters including non-default version policy. (If used, "
       "--model_name, --model_base_path are ignored.)"),
    _F("model_config_file_poll_wait_seconds", int, 0, "Interval in seconds between each poll of the "
       "filesystem for model_config_file. If unset or set to zero, poll will be done exactly once and not "
       "periodically. Setting this to negative is reserved for testing purposes only."),
    _F("model_name", str, "default", "name of model (ignored if --model_config_file flag is set)"),
    _F("model_base_path", str, "", "path to export (ignored if --model_config_file flag is set, otherwise "
       "required)"),
    _F("num_load_threads", int, 0, "The number of threads in the thread-pool used to load servables. If set "
       "as 0, we don't use a thread-pool, and servable loads are performed serially in the manager's main "
       "work loop, may casue the Serving request to be delayed. Default: 0"),
    _F("num_unload_threads", int, 0, "The number of threads in the thread-pool used to unload servables. If "
       "set as 0, we don't use a thread-pool, and servable loads are performed serially in the manager's "
       "main work loop, may casue the Serving request to be delayed. Default: 0", False),
    _F("max_num_load_retries", int, 5, "maximum number of times it retries loading a model after the first "
       "failure, before giving up. If set to 0, a load is attempted only once. Default: 5"),
    _F("load_retry_interval_micros", int, 60 * 1000 * 1000, "The interval, in microseconds, between each "
       "servable load retry. If set negative, it doesn't wait. Default: 1 minute"),
    _F("file_system_poll_wait_seconds", int, 1, "Interval in seconds between each poll of the filesystem "
       "for new model version. If set to zero poll will be exactly done once and not periodically. Setting "
       "this to negative value will disable polling entirely causing ModelServer to indefinitely wait for a "
       "new model at startup. Negative values are reserved for testing purposes only."),
    _F("flush_filesystem_caches", bool, True, "If true (the default), filesystem caches will be flushed "
       "after the initial load of all servables, and after each subsequent individual servable reload (if "
       "the number of load threads is 1).", False),
    _F("tensorflow_session_parallelism", int, 0, "Number of threads to use for running a Tensorflow session. "
       "Auto-configured by default.Note that this option is ignored if --platform_config_file is non-empty."),
    _F("tensorflow_intra_op_parallelism", int, 0, "Number of threads to use to parallelize the execution"
       "of an individual op. Auto-configured by default.Note that this option is ignored if "
       "--platform_config_file is non-empty."),
    _F("tensorflow_inter_op_parallelism", int, 0, "Controls the number of operators that can be executed "
       "simultaneously. Auto-configured by default.Note that this option is ignored if "
       "--platform_config_file is non-empty."),
    _F("use_alts_credentials", bool, False, "Use Google ALTS credentials", False),
    _F("ssl_config_file", str, "", "If non-empty, read an ascii SSLConfig protobuf from the supplied file "
       "name and set up a secure gRPC channel"),
    _F("platform_config_file", str, "", "If non-empty, read an ascii PlatformConfigMap protobuf from the "
       "supplied file name, and use that platform config instead of the Tensorflow platform. (If used, "
       "--enable_batching is ignored.)", False),
    _F("per_process_gpu_memory_fraction", float, 0.0, "Fraction that each process occupies of the GPU "
       "memory space the value is between 0.0 and 1.0 (with 0.0 as the default) If 1.0, the server will "
       "allocate all the memory when the server starts, If 0.0, Tensorflow will automatically select a "
       "value."),
    _F("saved_model_tags", str, "serve", "Comma-separated set of tags corresponding to the meta graph def "
       "to load from SavedModel."),
    _F("grpc_channel_arguments", str, "", "A comma separated list of arguments to be passed to the grpc "
       "server. (e.g. grpc.max_connection_age_ms=2000)"),
    _F("grpc_max_threads", int, 0, "Max grpc server threads to handle grpc messages.", False),
    _F("enable_model_warmup", bool, True, "Enables model warmup, which triggers lazy initializations (such "
       "as TF optimizations) at load time, to reduce first request latency."),
    _F("num_request_iterations_for_warmup", int, 1, "Number of times a request is iterated during warmup "
       "replay. This value is used only if > 0."),
    _F("version", bool, False, "Display version"),
    _F("monitoring_config_file", str, "", "If non-empty, read an ascii MonitoringConfig protobuf from the "
       "supplied file name"),
    _F("remove_unused_fields_from_bundle_metagraph", bool, True, "Removes unused fields from MetaGraphDef "
       "proto message to save memory.", False),
    _F("prefer_tflite_model", bool, False, "EXPERIMENTAL; CAN BE REMOVED ANYTIME! Prefer TensorFlow Lite "
       "model from `model.tflite` file in SavedModel directory, instead of the TensorFlow model from "
       "`saved_model.pb` file. If no TensorFlow Lite model found, fallback to TensorFlow model.", False),
    _F("num_tflite_pools", int, 1, "EXPERIMENTAL; CAN BE REMOVED ANYTIME! Number of TFLite interpreters in "
       "an interpreter pool of TfLiteSession.", False),
    _F("num_tflite_interpreters_per_pool", int, 1, "EXPERIMENTAL; CAN BE REMOVED ANYTIME! Number of TFLite "
       "interpreters in an interpreter pool of TfLiteSession.", False),
    _F("enable_signature_method_name_check", bool, False, "Enable method_name check for SignatureDef. "
       "Disable this if serving native TF2 regression/classification models."),
    _F("xla_cpu_compilation_enabled", bool, False, "EXPERIMENTAL; CAN BE REMOVED ANYTIME! Enable XLA:CPU "
       "JIT (default is disabled).", False),
    _F("enable_profiler", bool, True, "Enable profiler service.", False),
    _F("thread_pool_factory_config_file", str, "", "If non-empty, read an ascii ThreadPoolConfig protobuf "
       "from the supplied file name.", False),
    _F("mixed_precision", str, "", "specify mixed_precision mode", False),
    _F("skip_initialize_tpu", bool, False, "Whether to skip auto initializing TPU.", False),
    _F("enable_grpc_healthcheck_service", bool, True, "Enable the standard gRPC healthcheck service. "
       "(tfgate: on by default; TF Serving's default is false)"),
    _F("enable_serialization_as_tensor_content", bool, False, "Enable serialization of predict response as "
       "tensor content."),
    _F("tensorflow_session_config_file", str, "", "If non-empty, read an ascii TensorFlow Session "
       "ConfigProto protobuf from the supplied file name. Note, parts of the session config (threads, "
       "parallelism etc.) can be overridden if needed, via corresponding command-line flags.", False),
    _F("bind_address", str, "0.0.0.0", "tfgate only: address the gRPC and REST ports listen on (TF Serving "
       "always uses all interfaces; tests use 127.0.0.1)."),
    _F("grpc_shutdown_grace_seconds", float, 30.0, "tfgate only: on SIGTERM, how long in-flight requests "
       "may take to finish before the server exits."),
    _F("max_request_tensor_bytes", int, 0, "tfgate only: the most bytes one request's input tensors may take "
       "once decoded (declared elements x dtype size; a string element counts 24 bytes plus its content). A "
       "larger request is refused with INVALID_ARGUMENT (REST 400) before anything is allocated. 0: the "
       "largest message the server accepts (2147483647 bytes, as gRPC and REST accept by default)."),
]
BY_NAME = {f.name: f for f in FLAGS}


class FlagError(Exception):
    pass


def _parse_bool(text: str) -> bool:
    t = text.strip().lower()
    if t in ("true", "t", "1", "yes", "y"):
        return True
    if t in ("false", "f", "0", "no", "n"):
        return False
    raise FlagError(f"Illegal value '{text}' specified for bool flag")


def _convert(flag: Flag, text: str) -> Any:
    if flag.type is bool:
        return _parse_bool(text)
    try:
        return flag.type(text)
    except ValueError:
        kind = {int: "int32", float: "double"}.get(flag.type, flag.type.__name__)
        raise FlagError(f"Illegal value '{text}' specified for {kind} flag '{flag.name}'") from None


@dataclasses.dataclass
class Options:
    values: dict[str, Any]
    set_flags: set[str]
    warnings: list[str]
    help: bool = False

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None


def parse(argv: list[str]) -> Options:
    values = {f.name: f.default for f in FLAGS}
    set_flags: set[str] = set()
    warnings: list[str] = []
    want_help = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg in ("--help", "-help", "--helpfull", "-h"):
            want_help = True
            continue
        if not arg.startswith("-") or arg in ("-", "--"):
            raise FlagError(f"Unexpected argument '{arg}'; flags look like --port=8500")
        body = arg.lstrip("-")
        name, eq, value = body.partition("=")
        flag = BY_NAME.get(name)
        negated = False
        if flag is None and name.startswith("no") and BY_NAME.get(name[2:], None) is not None:
            flag, negated = BY_NAME[name[2:]], True
            if flag.type is not bool:
                flag = None
        if flag is None:
            raise FlagError(f"Unknown command line flag '{name}'")
        if negated:
            if eq:
                raise FlagError(f"Flag '--{name}' takes no value")
            v: Any = False
        elif eq:
            v = _convert(flag, value)
        elif flag.type is bool:
            v = True
        else:
            if i >= len(argv):
                raise FlagError(f"Missing value for flag '--{name}'")
            v = _convert(flag, argv[i])
            i += 1
        values[flag.name] = v
        set_flags.add(flag.name)
        if not flag.supported:
            warnings.append(f"flag --{flag.name} is accepted for compatibility with tensorflow_model_server "
                            f"but has no effect in tfgate model-server")
    return Options(values, set_flags, warnings, want_help)


def usage() -> str:
    lines = ["usage: tfgate model-server [--port=8500] [--rest_api_port=0] --model_name=NAME "
             "--model_base_path=DIR | --model_config_file=FILE [flags]",
             "", "Flags (spelled as for tensorflow_model_server):"]
    for f in FLAGS:
        kind = {bool: "bool", int: "int32", float: "float", str: "string"}[f.type]
        default = str(f.default).lower() if f.type is bool else repr(f.default) if f.type is str else f.default
        note = "" if f.supported else " (accepted, no effect here)"
        lines.append(f"\t--{f.name}={default}\t{kind}\t{f.help}{note}")
    return "\n".join(lines)


def main_error(msg: str) -> None:
    print(f"ERROR: {msg}", file=sys.stderr)
    print("usage: tfgate model-server --help lists the flags", file=sys.stderr)
