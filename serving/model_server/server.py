"""`tfgate model-server`: start-up, the gRPC and REST servers, config polling and SIGTERM drain."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
from concurrent.futures import ThreadPoolExecutor

from . import flags

log = logging.getLogger("tfgate.model_server")
EXIT_START_FAILED = 255  # TF Serving's main returns -1 when the server fails to start


class StartError(Exception):
    pass


def _channel_args(text: str) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise StartError(f"Invalid --grpc_channel_arguments entry '{item}': expected key=value")
        try:
            out.append((key.strip(), int(value)))
        except ValueError:
            out.append((key.strip(), value.strip()))
    return out


def build_config(opts):
    from tensorflow_serving.config import model_server_config_pb2

    from . import textproto

    if opts.model_config_file:
        return read_proto_file(opts.model_config_file, textproto.read_model_server_config)
    if not opts.model_base_path:
        raise StartError("Both server_options.model_base_path and server_options.model_config_file are "
                         "empty! (pass --model_base_path=DIR or --model_config_file=FILE)")
    cfg = model_server_config_pb2.ModelServerConfig()
    mc = cfg.model_config_list.config.add()
    mc.name = opts.model_name
    mc.base_path = opts.model_base_path
    mc.model_platform = "tensorflow"
    return cfg


REST_MAX_BODY = 2**31 - 1  # the REST body limit (aiohttp's client_max_size), as large as gRPC's default
# The REST port's listen queue (the kernel caps it at net.core.somaxconn; gRPC's port asks for that). aiohttp's
# default of 128 overflowed when 256 clients connected at once while the loop was busy: the kernel dropped the
# handshakes past 128 and those clients' first requests waited for a retransmission, 0.2-1 s (issue 20).
REST_BACKLOG = 4096


def max_tensor_bytes(opts) -> int:
    """--max_request_tensor_bytes, or by default the largest message the server accepts: gRPC's max
    receive length (2 GiB - 1 unless --grpc_channel_arguments lowers it) and, with REST on, its body limit.

    Why 1x and not more: an honest request decodes to about its own size, so this only refuses shapes
    the bytes do not carry (TensorFlow fills any shape from one value). 2 GiB - 1 is protobuf's ceiling,
    not a memory budget: even 2x would let a request of a few bytes claim 4 GB (issue 13 saw 23 GB and
    the OOM killer). Deployments that know their models set the flag lower."""
    if opts.max_request_tensor_bytes < 0:
        raise StartError("--max_request_tensor_bytes must be >= 0 (0: the largest message accepted)")
    if opts.max_request_tensor_bytes:
        return opts.max_request_tensor_bytes
    grpc_max = dict(_channel_args(opts.grpc_channel_arguments)).get("grpc.max_receive_message_length", -1)
    if not isinstance(grpc_max, int) or not 0 <= grpc_max <= REST_MAX_BODY:  # -1: unlimited
        grpc_max = REST_MAX_BODY
    return max(grpc_max, REST_MAX_BODY if opts.rest_api_port else 0)


_ERRNO_CODE = {FileNotFoundError: "NOT_FOUND", PermissionError: "PERMISSION_DENIED",
               IsADirectoryError: "FAILED_PRECONDITION"}


def file_error(path: str, e: OSError) -> str:
    """An unreadable file in TensorFlow's words: `NOT_FOUND: <path>; No such file or directory`."""
    return f"{_ERRNO_CODE.get(type(e), 'UNKNOWN')}: {path}; {e.strerror or e}"


def read_proto_file(path: str, read):
    """`read(path)` for a text-proto file read at start-up. A malformed one fails as in TF Serving:
    protobuf's `Error parsing text-format <type>: <line>:<col>: ...` line(s) are logged, then the
    start fails with `INVALID_ARGUMENT: Invalid protobuf file: '<path>'`."""
    from . import textproto

    try:
        return read(path)
    except textproto.TextProtoError as e:
        for line in e.lines:
            log.error("%s", line)
        raise StartError(f"INVALID_ARGUMENT: Invalid protobuf file: '{path}'") from None
    except OSError as e:
        raise StartError(file_error(path, e)) from None


def _read_opt(path: str, schema, type_name: str) -> dict:
    from . import textproto

    return read_proto_file(path, lambda p: textproto.read(p, schema, type_name))


class HeapFreezer:
    """Keeps the long-lived heap (TensorFlow's modules, the loaded graphs: about 400,000 objects for one
    small model) out of the cyclic garbage collector's full passes with `gc.freeze()`.

    Why: requests allocate fast enough that CPython ran a full collection about once a second under load,
    and each walked the whole heap: 9 in 10 s of up to 340 ms at c=64, on the event loop's thread, every
    request in flight stalled behind it. That was the REST p99 at c=64 (issue 20). With the heap frozen a
    full pass walks only what was made since, about a millisecond.

    After a load the new objects are frozen too (a collection of the unfrozen rest first, cheap). After an
    unload the heap is unfrozen and collected once in full, so the unloaded graph's reference cycles are
    freed, then frozen again: one full pass per unload instead of one a second."""

    def __init__(self):
        self._handle: asyncio.Handle | None = None
        self._unfreeze = False

    def attach(self, manager) -> None:
        manager.on_load.append(self.loaded)
        manager.on_unload.append(self.unloaded)

    def loaded(self, servable=None) -> None:
        self._schedule(False)

    def unloaded(self, servable=None) -> None:
        # Called before the manager closes the Session: the pass runs on the loop's next turn, after it.
        self._schedule(True)

    def _schedule(self, unfreeze: bool) -> None:
        self._unfreeze |= unfreeze
        if self._handle is None:  # several loads/unloads in one turn: one pass
            self._handle = asyncio.get_running_loop().call_soon(self.freeze)

    def freeze(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._unfreeze:
            gc.unfreeze()
            self._unfreeze = False
        gc.collect()
        gc.freeze()


async def serve(opts, cfg) -> int:
    import grpc
    from aiohttp import web

    from .. import grpc_plumbing
    from ..status import ServingError
    from ..tfs_protos import SERVICES
    from . import textproto
    from .batching import Batcher, BatchingParameters
    from .data_plane import DataPlane
    from .grpc_server import add_services
    from .inference import InferenceOptions
    from .manager import Manager, ManagerOptions, State
    from .metrics import Metrics
    from .rest import ListenSite, Rest

    inference_options = InferenceOptions(check_method_name=opts.enable_signature_method_name_check,
                                         as_tensor_content=opts.enable_serialization_as_tensor_content)

    metrics_path = None
    if opts.monitoring_config_file:
        mon = _read_opt(opts.monitoring_config_file, textproto.MONITORING_SCHEMA,
                        "tensorflow.serving.MonitoringConfig")
        prom = mon.get("prometheus_config", {})
        if prom.get("enable"):
            metrics_path = prom.get("path") or "/monitoring/prometheus/metrics"
    metrics = Metrics() if metrics_path else None
    tensor_bytes = max_tensor_bytes(opts)
    log.info("A request's tensors may take up to %d bytes decoded (--max_request_tensor_bytes)", tensor_bytes)

    batcher = None
    executor = ThreadPoolExecutor(max(4, 2 * (os.cpu_count() or 1)), thread_name_prefix="run")
    if opts.enable_batching:
        raw = {}
        if opts.batching_parameters_file:
            raw = _read_opt(opts.batching_parameters_file, textproto.BATCHING_SCHEMA,
                            "tensorflow.serving.BatchingParameters")
        try:
            params = BatchingParameters.from_dict(raw)
        except ServingError as e:
            raise StartError(f"INVALID_ARGUMENT: {e.message}") from None
        batcher = Batcher(params, executor, metrics, max_pad_bytes=tensor_bytes)
        log.info("Batching enabled: %s", params)

    manager = Manager(ManagerOptions(
        tags=[t.strip() for t in opts.saved_model_tags.split(",") if t.strip()],
        max_num_load_retries=opts.max_num_load_retries,
        load_retry_interval_s=max(0.0, opts.load_retry_interval_micros / 1e6),
        file_system_poll_wait_seconds=opts.file_system_poll_wait_seconds,
        enable_model_warmup=opts.enable_model_warmup,
        num_request_iterations_for_warmup=opts.num_request_iterations_for_warmup,
        allow_version_labels_for_unavailable_models=opts.allow_version_labels_for_unavailable_models,
        num_load_threads=opts.num_load_threads,
        session_config=_session_config(opts),
        inference=inference_options,
    ), metrics)
    if batcher is not None:
        manager.on_unload.append(batcher.drop)
    heap = HeapFreezer()
    heap.attach(manager)
    if metrics is not None:  # request logging's counters (records written, dropped, failed; files)
        metrics.registry.register(manager.request_logs.collector())
    try:
        await manager.apply_config(cfg)
    except ServingError as e:
        raise StartError(f"{e.code.name}: {e.message}") from None
    for model in manager.models.values():
        if model.versions and not model.available():
            errs = [v.error for v in model.versions.values() if v.state == State.END and v.error]
            if errs:
                raise StartError(f"{errs[0].code.name}: {errs[0].message}")
    heap.freeze()  # now, before the first request: the models are in
    log.info("Heap frozen for the garbage collector: %d objects", gc.get_freeze_count())
    manager.start_polling()

    plane = DataPlane(manager, executor, batcher, metrics, max_tensor_bytes=tensor_bytes, options=inference_options)
    options = [("grpc.max_receive_message_length", 2**31 - 1), ("grpc.max_send_message_length", 2**31 - 1),
               ("grpc.so_reuseport", 0)]
    extra = _channel_args(opts.grpc_channel_arguments)
    keys = {k for k, _ in extra}
    options = [o for o in options if o[0] not in keys] + extra
    server = grpc.aio.server(options=options)
    health = add_services(server, plane, opts.enable_grpc_healthcheck_service)
    creds = None
    if opts.ssl_config_file:
        ssl = _read_opt(opts.ssl_config_file, textproto.SSL_SCHEMA, "tensorflow.serving.SSLConfig")
        creds = grpc.ssl_server_credentials(
            [(ssl.get("server_key", "").encode(), ssl.get("server_cert", "").encode())],
            root_certificates=ssl.get("custom_ca", "").encode() or None,
            require_client_auth=bool(ssl.get("client_verify", False)))
    if opts.port:
        addr = f"{opts.bind_address}:{opts.port}"
        bound = server.add_secure_port(addr, creds) if creds else server.add_insecure_port(addr)
        if not bound:
            raise StartError(f"Failed to BuildAndStart(); cannot bind {addr}")
    if opts.grpc_socket_path:
        uds = f"unix:{opts.grpc_socket_path}"
        if creds:
            server.add_secure_port(uds, creds)
        else:
            server.add_insecure_port(uds)
    await server.start()
    if opts.port:
        log.info("Running gRPC ModelServer at %s:%d ...", opts.bind_address, opts.port)
    if opts.grpc_socket_path:
        log.info("Running gRPC ModelServer at UNIX socket %s ...", opts.grpc_socket_path)

    runner = None
    if opts.rest_api_port:
        if opts.rest_api_port == opts.port:
            raise StartError("server_options.grpc_port cannot be the same as server_options.http_port. "
                             "Please use a different port for HTTP/REST API. Skipped exporting HTTP/REST "
                             "API.")
        rest = Rest(plane, opts.rest_api_timeout_in_ms, metrics, metrics_path, opts.rest_api_enable_cors_support,
                    max_tensor_bytes=tensor_bytes)
        runner = web.AppRunner(rest.app(client_max_size=REST_MAX_BODY), access_log=None,
                               shutdown_timeout=opts.grpc_shutdown_grace_seconds)
        await runner.setup()
        await ListenSite(runner, opts.bind_address, opts.rest_api_port, REST_BACKLOG).start()
        log.info("Exporting HTTP/REST API at:%s:%d ...", opts.bind_address, opts.rest_api_port)

    config_task = None
    if opts.model_config_file and opts.model_config_file_poll_wait_seconds > 0:
        config_task = asyncio.create_task(_poll_config(manager, opts))

    await grpc_plumbing.set_serving(health, SERVICES)
    log.info("tfgate model-server ready (pid %d)", os.getpid())
    await grpc_plumbing.stop_signal()

    log.info("Received a stop signal: health NOT_SERVING, draining in-flight requests (grace %.0f s)",
             opts.grpc_shutdown_grace_seconds)
    if config_task:
        config_task.cancel()
    await grpc_plumbing.drain(server, health, opts.grpc_shutdown_grace_seconds,
                              alongside=[runner.cleanup()] if runner is not None else [])
    await manager.close()
    executor.shutdown(wait=False, cancel_futures=True)
    log.info("Server stopped.")
    return 0


async def _poll_config(manager, opts) -> None:
    """Re-read --model_config_file when it changes. A file that cannot be read or parsed, or a
    config that cannot be applied, is logged in TF Serving's words; the server keeps its config."""
    from ..status import ServingError
    from . import textproto

    last = None
    try:
        with open(opts.model_config_file, "rb") as f:
            last = f.read()
    except OSError:
        pass
    while True:
        await asyncio.sleep(opts.model_config_file_poll_wait_seconds)
        try:
            with open(opts.model_config_file, "rb") as f:
                text = f.read()
        except OSError as e:
            log.error("Failed to read ModelServerConfig file: %s", file_error(opts.model_config_file, e))
            continue
        if text == last:
            continue
        last = text
        try:
            cfg = textproto.parse_model_server_config(text)
        except textproto.TextProtoError as e:
            for line in e.lines:
                log.error("%s", line)
            log.error("Failed to read ModelServerConfig file: Invalid protobuf file: '%s'", opts.model_config_file)
            continue
        try:
            await manager.apply_config(cfg)
            log.info("Applied new model config from %s", opts.model_config_file)
        except ServingError as e:
            log.error("PollFilesystemAndReloadConfig failed to ReloadConfig: %s", e.message)


def _session_config(opts):
    import tensorflow as tf

    from .servable import session_config

    config = session_config(opts.tensorflow_intra_op_parallelism, opts.tensorflow_inter_op_parallelism,
                            opts.tensorflow_session_parallelism, opts.per_process_gpu_memory_fraction)
    gpus = tf.config.list_physical_devices("GPU")
    log.info("Session config: intra_op=%d inter_op=%d gpu_memory_fraction=%g; visible GPUs: %d",
             config.intra_op_parallelism_threads, config.inter_op_parallelism_threads,
             config.gpu_options.per_process_gpu_memory_fraction, len(gpus))
    return config


def main(argv: list[str]) -> int:
    try:
        opts = flags.parse(argv)
    except flags.FlagError as e:
        flags.main_error(str(e))
        return 2
    if opts.help:
        print(flags.usage())
        return 0
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s.%(msecs)03d: %(levelname).1s %(name)s] %(message)s",
                        datefmt="%Y-%m-%d %H:%M:%S")
    if opts.version:
        import tensorflow as tf

        print(f"TensorFlow ModelServer: tfgate-model-server\nTensorFlow Library: {tf.__version__}")
        return 0
    for w in opts.warnings:
        log.warning(w)
    try:
        if opts.batching_parameters_file and not opts.enable_batching:
            raise StartError("INVALID_ARGUMENT: Batching parameters file specified but batching is not "
                             "enabled (--enable_batching)")
        cfg = build_config(opts)
        from .. import event_loop

        return event_loop.run(serve(opts, cfg))
    except StartError as e:
        log.error("Failed to start server. Error: %s", e)
        return EXIT_START_FAILED
