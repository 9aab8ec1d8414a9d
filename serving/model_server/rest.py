"""TF Serving's REST API on aiohttp: the same paths, JSON shapes and HTTP codes.

Requests are turned into the gRPC request protos and go through the same code as gRPC, so
validation and error messages are identical; errors come back as {"error": "..."}.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import socket

import numpy as np
from aiohttp import web
from google.protobuf import json_format
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    predict_pb2,
    regression_pb2,
)

from .. import tensor_codec as codec
from .. import tensor_limits as limits
from ..status import ServingError, invalid
from . import tensors, v2
from .data_plane import DataPlane

log = logging.getLogger("tfgate.model_server")

_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)"
                   r"(?:/versions/(?P<version>-?\d+)|/labels/(?P<label>[^/:]+))?"
                   r"(?:(?P<meta>/metadata)|:(?P<verb>[A-Za-z]+))?/?$")


def _err(e: ServingError) -> web.Response:
    return web.json_response({"error": e.message}, status=e.http_status)


def _spec(spec, m: re.Match, signature_name: str = "") -> None:
    spec.name = m["name"]
    if m["version"] is not None:
        spec.version.value = int(m["version"])
    elif m["label"] is not None:
        spec.version_label = m["label"]
    if signature_name:
        if not isinstance(signature_name, str):  # classify/regress take it from the JSON as is
            raise invalid("'signature_name' must be a string")
        spec.signature_name = signature_name


# ---- JSON -> numpy for a given TF dtype
def _b64(obj) -> bytes:
    try:
        return base64.b64decode(obj["b64"], validate=True)
    except Exception:
        raise invalid(f"Unable to base64 decode: {obj['b64']!r}") from None


def _is_b64(v) -> bool:
    return isinstance(v, dict) and set(v) == {"b64"} and isinstance(v["b64"], str)


_CHUNK = 1 << 22


def _json_bytes(body: bytes) -> int:
    """About how many bytes json.loads builds from `body` (measured with tracemalloc: 32 per `1.5,`, 64
    per `[1],`, about 190 per `{"a":1}`; strings 1 byte a character, up to 4 once one needs more): a
    body well under the REST limit can still take more memory than a request may. Counted with numpy
    in 4 MB slices (bytes.count is slower): about a tenth of json.loads' time."""
    tokens = braces = escapes = 0
    for i in range(0, len(body), _CHUNK):
        a = np.frombuffer(body, np.uint8, min(_CHUNK, len(body) - i), i)
        tokens += sum(int(np.count_nonzero(a == c)) for c in b",[:")
        braces += int(np.count_nonzero(a == ord("{")))
        escapes += int(np.count_nonzero(a == ord("\\")))
    per_char = 1 if not escapes and body.isascii() else 4
    return per_char * len(body) + 40 * tokens + 190 * braces


def _string_sizes(v, acc: list[int]) -> None:
    """Element count and content bytes of a JSON string tensor, before decoding any of it."""
    if isinstance(v, list):
        for x in v:
            _string_sizes(x, acc)
        return
    acc[0] += 1
    if _is_b64(v):
        b = v["b64"]
        acc[1] += len(b) // 4 * 3 - b.endswith("=") - b.endswith("==")
    elif isinstance(v, str):
        acc[1] += len(v) if v.isascii() else 4 * len(v)  # UTF-8: at most 4 bytes a character


def _json_to_array(value, dt: int, alias: str, budget: limits.Budget | None = None) -> np.ndarray:
    try:
        return _json_array(value, dt, alias, budget)
    except limits.LimitError as e:
        raise invalid(f"input {alias}: {e}") from None


def _json_array(value, dt: int, alias: str, budget: limits.Budget | None) -> np.ndarray:
    if dt == types_pb2.DT_STRING:
        if budget is not None:
            acc = [0, 0]
            _string_sizes(value, acc)
            n = acc[0]
            budget.take(limits.tensor_bytes(dt, n, acc[1]), f"a string tensor of {n} element{'s' * (n != 1)}")
        def leaf(v):
            if isinstance(v, list):
                return [leaf(x) for x in v]
            if _is_b64(v):
                return _b64(v)
            if isinstance(v, str):
                return v.encode("utf-8")
            raise invalid(f"JSON Value: {json.dumps(v)} Type: {type(v).__name__} is not of expected type: "
                          f"string")
        conv = leaf(value)
        try:
            arr = np.array(conv, dtype=object)
            if arr.dtype != object or any(not isinstance(x, bytes) for x in arr.ravel()):
                raise ValueError
        except ValueError:
            raise invalid(f"Failed to process element of '{alias}': the lists are not all of the same "
                          f"shape") from None
        return arr
    npdt = codec.NP_OF.get(dt)
    if npdt is None:
        raise invalid(f"Unsupported dtype {codec.dtype_name(dt)} for input {alias} in JSON")
    try:
        raw = np.array(value)
    except ValueError:
        raise invalid(f"Failed to process element of '{alias}': the lists are not all of the same "
                      f"shape") from None
    if raw.dtype == object or raw.dtype.kind in "SU":
        bad = next((v for v in raw.ravel() if not isinstance(v, int | float | bool)), raw.ravel()[:1])
        raise invalid(f"JSON Value: {json.dumps(bad if not isinstance(bad, np.ndarray) else value)} "
                      f"is not of expected type: {codec.dtype_name(dt)}")
    if raw.dtype.kind == "b" and dt != types_pb2.DT_BOOL or dt == types_pb2.DT_BOOL and raw.dtype.kind != "b":
        raise invalid(f"JSON Value of '{alias}' is not of expected type: {codec.dtype_name(dt)}")
    if np.dtype(npdt).kind in "iu" and raw.dtype.kind == "f":
        raise invalid(f"JSON Value of '{alias}' is a float, not of expected type: {codec.dtype_name(dt)}")
    if budget is not None:  # `raw` is no larger than the parsed JSON list; the cast may be (complex128)
        budget.take(limits.tensor_bytes(dt, raw.size),
                    f"shape {limits.dims_text(raw.shape)} of {codec.dtype_name(dt)}")
    return raw.astype(npdt)


def _to_json(arr: np.ndarray, alias: str):
    if arr.dtype == object:
        as_b64 = alias.endswith("_bytes")

        def leaf(v):
            if isinstance(v, bytes):
                if not as_b64:
                    try:
                        return v.decode("utf-8")
                    except UnicodeDecodeError:
                        pass
                return {"b64": base64.b64encode(v).decode("ascii")}
            return v
        return np.vectorize(leaf, otypes=[object])(arr).tolist() if arr.ndim else leaf(arr.item())
    return arr.tolist()


class ListenSite(web.BaseSite):
    """The REST port: like aiohttp's TCPSite, but every connection waiting in the listen queue is accepted as
    soon as the listening socket is readable.

    Why: uvloop (libuv) accepts one connection per loop turn. Under load a turn takes 10-40 ms, so when 256
    clients connected at once about 150 of them waited 0.2-1.5 s in the kernel's accept queue, their first
    requests with them: the p99/p99.9 at c=256, outside every timing inside the server (issue 20; asyncio's own
    loop accepts up to the backlog per turn). Accepted sockets become aiohttp connections through the loop's
    connect_accepted_socket, as TCPSite's would."""

    __slots__ = ("_host", "_port", "_socks", "_pending")

    def __init__(self, runner, host: str, port: int, backlog: int):
        super().__init__(runner, backlog=backlog)
        self._host, self._port = host, port
        self._socks: list[socket.socket] = []
        self._pending: set[asyncio.Task] = set()

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(self._host or None, self._port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
        try:
            for family, kind, proto, _, addr in dict.fromkeys(infos):  # as asyncio's create_server binds
                sock = socket.socket(family, kind, proto)
                self._socks.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(addr)
                sock.listen(self._backlog)
                sock.setblocking(False)
            for sock in self._socks:
                loop.add_reader(sock.fileno(), self._accept, loop, sock)
        except BaseException:
            self._close(loop)
            raise

    def _accept(self, loop, sock: socket.socket) -> None:
        for _ in range(self._backlog):
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as e:  # out of file descriptors or buffers: pause, as asyncio's loop does
                log.error("REST port: accept failed (%s); accepting again in 1 s", e)
                loop.remove_reader(sock.fileno())
                loop.call_later(1.0, self._resume, loop, sock)
                return
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small answers go out at once
            task = loop.create_task(loop.connect_accepted_socket(self._runner.server, conn))
            self._pending.add(task)
            task.add_done_callback(self._connected)

    def _resume(self, loop, sock: socket.socket) -> None:
        if sock in self._socks:
            loop.add_reader(sock.fileno(), self._accept, loop, sock)

    def _connected(self, task: asyncio.Task) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:  # the client left before it started
            log.debug("REST port: connection not set up: %s", task.exception())

    def _close(self, loop) -> None:
        for sock in self._socks:
            if sock.fileno() >= 0:
                loop.remove_reader(sock.fileno())
                sock.close()
        self._socks.clear()

    async def stop(self) -> None:
        self._close(asyncio.get_running_loop())
        await super().stop()


class Rest:
    def __init__(self, plane: DataPlane, timeout_ms: int, metrics=None, metrics_path: str | None = None,
                 cors: bool = False, max_tensor_bytes: int = limits.MAX_MESSAGE_BYTES):
        self.plane = plane
        self.max_tensor_bytes = max_tensor_bytes  # --max_request_tensor_bytes
        self.timeout = timeout_ms / 1000 if timeout_ms > 0 else None
        self.metrics = metrics
        self.metrics_path = metrics_path
        self.cors = cors
        self.v2 = v2.RestV2(v2.OpenInference(plane), self.timeout)  # /v2...: the Open Inference Protocol

    def app(self, client_max_size: int) -> web.Application:
        app = web.Application(client_max_size=client_max_size)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        return app

    async def dispatch(self, request: web.Request) -> web.Response:
        resp = await self._dispatch(request)
        if self.cors:
            resp.headers["Access-Control-Allow-Origin"] = "*"
        return resp

    async def _dispatch(self, request: web.Request) -> web.Response:
        path = request.path
        if self.metrics_path and path == self.metrics_path and request.method == "GET":
            return web.Response(body=self.metrics.exposition(),
                                content_type="text/plain", charset="utf-8")
        if path == "/v2" or path.startswith("/v2/"):
            return await self.v2.dispatch(request)
        m = _PATH.match(path)
        malformed = ServingError(invalid("").code, f"Malformed request: {request.method} {path}")
        malformed.code = __import__("grpc").StatusCode.NOT_FOUND
        if m is None:
            return _err(malformed)
        try:
            if request.method == "GET" and m["verb"] is None:
                if m["meta"]:
                    return await self._run(self._metadata(m))
                return await self._run(self._status(m))
            if request.method == "POST" and m["verb"] in ("predict", "classify", "regress") and not m["meta"]:
                body = await request.read()
                parsed = _json_bytes(body)
                if parsed > self.max_tensor_bytes:  # refused before parsing: the parse is the allocation
                    raise invalid(f"request body: {len(body)} bytes of JSON would take about {parsed} bytes "
                                  f"once parsed, over the limit of {self.max_tensor_bytes} bytes for a "
                                  f"request (--max_request_tensor_bytes)")
                try:
                    doc = json.loads(body) if body else None
                except (json.JSONDecodeError, UnicodeDecodeError) as e:
                    msg = f"{e.msg}. at offset: {e.pos}" if isinstance(e, json.JSONDecodeError) else str(e)
                    raise invalid(f"JSON Parse error: {msg}") from None
                except RecursionError:  # deeply nested arrays/objects: a client mistake, not a 500
                    raise invalid("JSON Parse error: nesting too deep") from None
                if not isinstance(doc, dict):
                    raise invalid("JSON Parse error: The document root must be an object.")
                if m["verb"] == "predict":
                    return await self._run(self._predict(m, doc, parsed))
                fn = {"classify": self._classify, "regress": self._regress}
                return await self._run(fn[m["verb"]](m, doc))
        except ServingError as e:
            return _err(e)
        return _err(malformed)

    async def _run(self, coro) -> web.Response:
        try:
            # asyncio.timeout, not wait_for: wait_for (3.11) runs the call in a task of its own, one more
            # task and loop turn per request.
            async with asyncio.timeout(self.timeout):
                return await coro
        except ServingError as e:
            return _err(e)
        except RecursionError:
            return _err(invalid("JSON Parse error: nesting too deep"))
        except TimeoutError:
            return _err(ServingError(__import__("grpc").StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"))

    async def _status(self, m) -> web.Response:
        req = get_model_status_pb2.GetModelStatusRequest()
        _spec(req.model_spec, m)
        resp = self.plane.status(req)
        return web.json_response(json_format.MessageToDict(
            resp, preserving_proto_field_name=True, always_print_fields_with_no_presence=True))

    async def _metadata(self, m) -> web.Response:
        req = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        _spec(req.model_spec, m)
        resp = await self.plane.metadata(req)
        sdm = get_model_metadata_pb2.SignatureDefMap()
        resp.metadata["signature_def"].Unpack(sdm)
        # TF Serving prints the two protos apart (the Any unpacked), every field without presence
        # included ("dim": [], "unknown_rank": false, "defaults": {}), proto field names, int64 as strings.
        def as_dict(msg):
            return json_format.MessageToDict(msg, preserving_proto_field_name=True,
                                             always_print_fields_with_no_presence=True)
        return web.json_response({"model_spec": as_dict(resp.model_spec),
                                  "metadata": {"signature_def": as_dict(sdm)}})

    async def _predict(self, m, doc: dict, parsed: int = 0) -> web.Response:
        sig_name = doc.get("signature_name", "")
        if not isinstance(sig_name, str):
            raise invalid("'signature_name' must be a string")
        has_i, has_c = "instances" in doc, "inputs" in doc
        if has_i == has_c:
            raise invalid("Missing 'inputs' or 'instances' key" if not has_i else
                          "Not allowed to specify both 'instances' and 'inputs' in the request")
        req = predict_pb2.PredictRequest()
        _spec(req.model_spec, m, sig_name)
        v = self.plane.manager.resolve(req.model_spec)
        sig = v.servable.signature(sig_name)
        dtypes = sig.input_dtypes
        named: dict[str, object]
        if has_i:
            inst = doc["instances"]
            if not isinstance(inst, list):
                raise invalid("Expecting 'instances' to be an list/array")
            if inst and isinstance(inst[0], dict) and not _is_b64(inst[0]):
                keys = set(inst[0])
                for i, row in enumerate(inst):
                    if not isinstance(row, dict) or set(row) != keys:
                        raise invalid(f"Failed to process element: {i} of 'instances' list. JSON object: "
                                      f"{json.dumps(row)} keys do not match the keys of the first element")
                named = {k: [row[k] for row in inst] for k in keys}
            else:
                if len(dtypes) != 1:
                    raise invalid("instances is a plain list, but expecting list of objects as multiple "
                                  "input tensors required as per tensorinfo_map")
                named = {next(iter(dtypes)): inst}
        else:
            inp = doc["inputs"]
            if isinstance(inp, dict) and not _is_b64(inp):
                named = inp
            else:
                if len(dtypes) != 1:
                    raise invalid("inputs is a plain value/list, but expecting an object as multiple input "
                                  "tensors required as per tensorinfo_map")
                named = {next(iter(dtypes)): inp}
        # The parsed JSON stays alive while the arrays are built: both count.
        budget = limits.Budget(self.max_tensor_bytes, "--max_request_tensor_bytes", parsed,
                               "the parsed JSON and the request's other inputs")
        for k, val in named.items():
            dt = dtypes.get(k)
            arr = _json_to_array(val, dt, k, budget) if dt is not None else np.array([0], np.float32)
            req.inputs[k].CopyFrom(tensors.to_proto(arr, as_content=dt != types_pb2.DT_STRING))
        resp = await self.plane.predict(req)
        outs = {k: tensors.to_numpy(t, k) for k, t in resp.outputs.items()}
        if has_i:
            sizes = {a.shape[0] if a.ndim else -1 for a in outs.values()}
            if len(sizes) != 1 or -1 in sizes:
                raise invalid("Tensor name: outputs have different batch sizes (or are scalars) and cannot be "
                              "returned in row format; use 'inputs' (columnar) instead")
            if len(outs) == 1:
                (k, a), = outs.items()
                preds = _to_json(a, k)
            else:
                cols = {k: _to_json(a, k) for k, a in outs.items()}
                preds = [{k: cols[k][i] for k in cols} for i in range(sizes.pop())]
            return web.json_response({"predictions": preds}, dumps=_dumps)
        if len(outs) == 1:
            (k, a), = outs.items()
            return web.json_response({"outputs": _to_json(a, k)}, dumps=_dumps)
        return web.json_response({"outputs": {k: _to_json(a, k) for k, a in outs.items()}}, dumps=_dumps)

    def _input(self, doc: dict, inp) -> None:
        examples = doc.get("examples")
        if not isinstance(examples, list):
            raise invalid("'examples' must be a list of objects")
        exs = [_example(e, i) for i, e in enumerate(examples)]
        if "context" in doc:
            inp.example_list_with_context.context.CopyFrom(_example(doc["context"], "context"))
            inp.example_list_with_context.examples.extend(exs)
        else:
            inp.example_list.examples.extend(exs)

    async def _classify(self, m, doc: dict) -> web.Response:
        req = classification_pb2.ClassificationRequest()
        _spec(req.model_spec, m, doc.get("signature_name", "") or "")
        self._input(doc, req.input)
        resp = await self.plane.classify(req)
        results = [[[c.label, c.score] for c in cl.classes] for cl in resp.result.classifications]
        return web.json_response({"results": results}, dumps=_dumps)

    async def _regress(self, m, doc: dict) -> web.Response:
        req = regression_pb2.RegressionRequest()
        _spec(req.model_spec, m, doc.get("signature_name", "") or "")
        self._input(doc, req.input)
        resp = await self.plane.regress(req)
        return web.json_response({"results": [r.value for r in resp.result.regressions]}, dumps=_dumps)


def _dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _example(obj, where) -> example_pb2.Example:
    """A JSON object to tf.Example as TF Serving maps it: ints -> int64_list, floats -> float_list,
    strings and {"b64": ...} -> bytes_list."""
    if not isinstance(obj, dict):
        raise invalid(f"Example {where} must be a JSON object")
    ex = example_pb2.Example()
    for name, val in obj.items():
        vals = val if isinstance(val, list) else [val]
        f: feature_pb2.Feature = ex.features.feature[name]
        if not vals:
            continue
        if all(isinstance(v, str) or _is_b64(v) for v in vals):
            f.bytes_list.value.extend(_b64(v) if _is_b64(v) else v.encode("utf-8") for v in vals)
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
            if any(not -(2**63) <= v < 2**63 for v in vals):  # protobuf would raise: a 500
                raise invalid(f"Feature {name} of example {where} has an integer outside int64")
            f.int64_list.value.extend(vals)
        elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in vals):
            f.float_list.value.extend(float(v) for v in vals)
        else:
            raise invalid(f"Feature {name} of example {where} mixes types or has an unsupported value")
    return ex
