"""The floor of Python gRPC on this machine, for serving_bench.py to measure beside the real servers.

    python benchmarks/grpc_floor.py echo PORT            # answers every Predict with a fixed response
    python benchmarks/grpc_floor.py proxy PORT TARGET    # forwards Predict bytes to TARGET, untouched

Both are bare grpc.aio servers doing no work of their own: `echo` is what any Python gRPC model
server pays before it parses a request or runs a model; `proxy` is what any Python gRPC proxy adds
in front of one. They print "grpc_floor MODE ready" once listening and stop on SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import grpc

SERVICE = "tensorflow.serving.PredictionService"


async def serve(mode: str, port: int, target: str | None) -> None:
    if mode == "echo":
        # A PredictResponse naming a model (field 2, ModelSpec name "m"): a valid, small answer.
        answer = b"\x12\x03\n\x01m"

        async def predict(request: bytes, context) -> bytes:
            return answer
    else:
        channel = grpc.aio.insecure_channel(target)
        forward = channel.unary_unary(f"/{SERVICE}/Predict", request_serializer=None, response_deserializer=None)

        async def predict(request: bytes, context) -> bytes:
            return await forward(request, timeout=context.time_remaining())

    server = grpc.aio.server()
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        SERVICE, {"Predict": grpc.unary_unary_rpc_method_handler(predict)})])
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print(f"grpc_floor {mode} ready", flush=True)
    await stop.wait()
    await server.stop(0)


if __name__ == "__main__":
    mode, port, *rest = sys.argv[1:]
    if mode not in ("echo", "proxy") or (mode == "proxy") != bool(rest):
        sys.exit(__doc__)
    asyncio.run(serve(mode, int(port), rest[0] if rest else None))
