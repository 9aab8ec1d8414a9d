"""Ray Serve, as Ray Serve's guide for serving a TensorFlow model writes it: a `@serve.deployment` class that
loads the model in `__init__` and answers a Starlette request in `async __call__`, one application per model
(`serve.run(app, name=model, route_prefix="/" + model)`), on a local Ray started by this process.

    .venv/peers/ray/bin/python benchmarks/peers/ray_app.py --port 8000 --models half_plus_two=/m/half_plus_two/1,...

POST /<model> with TF Serving's row-format body ({"instances": [...]}) answers {"predictions": [...]}.
Prints READY once every application is RUNNING; SIGTERM shuts Serve and the local Ray down, then exits.
Ray Serve's defaults stand (one replica per deployment, max_ongoing_requests 5, a proxy actor in front,
per-request access logs), except each replica's CPU reservation: Serve asks 1 CPU per replica, and three
replicas would not fit on a 2-core box, so each asks cpu_count / models.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

READY = "ray serve ready"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--models", required=True, help="name=SavedModel folder, comma-separated")
    ap.add_argument("--max-ongoing-requests", type=int, nargs="*", default=[],
                    help="also serve each model as <model>-mor<N> with max_ongoing_requests N (Serve's tuning "
                         "guide raises it for light requests)")
    args = ap.parse_args()
    models = dict(item.split("=", 1) for item in args.models.split(","))

    import ray
    from ray import serve
    from starlette.requests import Request

    apps = [(name, path, {}) for name, path in models.items()]
    apps += [(f"{name}-mor{n}", path, {"max_ongoing_requests": n})
             for n in args.max_ongoing_requests for name, path in models.items()]
    cpus = int((os.cpu_count() or 1) / len(apps) * 100) / 100  # rounded down: all replicas must fit

    @serve.deployment(ray_actor_options={"num_cpus": cpus})
    class TFModel:
        def __init__(self, path: str):
            from tf_signature import Signature

            self.signature = Signature(path)

        async def __call__(self, request: Request) -> dict:
            from tf_signature import to_predictions

            body = await request.json()
            return {"predictions": to_predictions(self.signature(self.signature.from_instances(body["instances"])))}

    peers = os.path.dirname(os.path.abspath(__file__))
    ray.init(include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": peers, "TF_CPP_MIN_LOG_LEVEL": "2"}})
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    for name, path, options in apps:
        app = (TFModel.options(**options) if options else TFModel).bind(os.path.abspath(path))
        serve.run(app, name=name, route_prefix=f"/{name}")
    print(READY, flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    serve.shutdown()
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
