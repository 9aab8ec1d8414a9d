"""TF Serving's own services through the gateway: PredictionService and ModelService requests are
forwarded as bytes (only their model spec is read, and rewritten when routing picks a version), after
the model's size bound; HandleReloadConfigRequest goes to every backend."""

from __future__ import annotations

import asyncio
import functools
import time

import grpc

from ..status import ServingError, invalid
from ..tfs_protos import MODEL_SERVICE, PREDICTION_SERVICE, method_path
from . import tensors, wire
from .backends import BackendError, Pool
from .calls import Call, Calls, handled
from .routing import Router
from .shadow import PREDICT_PATH

# Pass-through methods: name -> is the model spec nested (MultiInference's tasks[0])?
PASSTHROUGH = {
    PREDICTION_SERVICE: {"Predict": False, "Classify": False, "Regress": False,
                         "GetModelMetadata": False, "MultiInference": True},
    MODEL_SERVICE: {"GetModelStatus": False},
}
# Only inference is split between labels: status and metadata without a version pass through
# unchanged, so a stock client sees every version and the backend's default, as on a direct call.
SPLIT_METHODS = frozenset({"Predict", "Classify", "Regress", "MultiInference"})
RELOAD_PATH = method_path(MODEL_SERVICE, "HandleReloadConfigRequest")
LOGGED = {"Classify": "classify_log", "Regress": "regress_log"}  # the PredictionLog field of each


class Passthrough:
    def __init__(self, calls: Calls, router: Router, pools: dict[str, Pool]):
        self.calls = calls
        self.router = router
        self.pools = pools

    def _handler(self, service: str, method: str, nested: bool):
        path = method_path(service, method)

        @handled(f"{service.rsplit('.', 1)[1]}.{method}")
        async def handler(self: Passthrough, request: bytes, context, call: Call):
            try:
                spec = wire.request_model_spec(request, nested)
            except wire.WireError as exc:
                raise invalid(f"request: not a valid {method} request ({exc})") from None
            m, pool = self.router.model(call, spec.name, "model_spec.name")
            self.router.check_size(m, len(request), "request")
            problem = tensors.passthrough_problem(method, request,
                                                  tensors.request_budget(call.model, m.max_tensor_bytes))
            if problem:
                raise invalid(problem)
            body = request
            if not nested:
                routed = self.router.route(call, m, spec.version, spec.label, split=method in SPLIT_METHODS)
                routed.signature_name = spec.signature_name
                if routed != spec:
                    body = wire.replace_model_spec(request, routed)
            elif spec.name != m.backend_model_name:
                raise invalid("tasks: MultiInference needs the backend's model name")
            if path == PREDICT_PATH:
                return await self.router.predict(call, m, pool, body)
            async def send() -> bytes:
                response, call.retries = await pool.call(path, body, call.backend_metadata(),
                                                         self.router.deadline(call, m))
                return response

            if method in LOGGED:  # request logging (issue 17); Predict is logged by the router
                return await self.router.request_logs.call(call.model, LOGGED[method], body, send)
            return await send()

        return functools.partial(handler, self)

    def generic_handlers(self) -> list[grpc.GenericRpcHandler]:
        """Both services, bytes in and bytes out."""
        out = []
        for service, methods in PASSTHROUGH.items():
            table = {name: grpc.unary_unary_rpc_method_handler(self._handler(service, name, nested))
                     for name, nested in methods.items()}
            if service == MODEL_SERVICE:
                table["HandleReloadConfigRequest"] = grpc.unary_unary_rpc_method_handler(self._reload)
            out.append(grpc.method_handlers_generic_handler(service, table))
        return out

    @handled("ModelService.HandleReloadConfigRequest")
    async def _reload(self, request: bytes, context, call: Call):
        # Configuration is per backend and names every model, so it goes to every target.
        if call.principal is not None and call.principal.models is not None:
            raise ServingError(grpc.StatusCode.PERMISSION_DENIED, "reloading config needs an all-models token")
        targets = {t.target: t for pool in self.pools.values() for t in pool.targets}
        timeout = max(0.05, call.deadline - time.monotonic())
        results = await asyncio.gather(*(t.method(RELOAD_PATH)(request, timeout=timeout,
                                                               metadata=call.backend_metadata())
                                         for t in targets.values()), return_exceptions=True)
        for r in results:
            if isinstance(r, grpc.aio.AioRpcError):
                raise BackendError(r.code(), r.details() or "")
            if isinstance(r, BaseException):
                raise r
        return results[-1]
