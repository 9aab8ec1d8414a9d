"""Which models and versions exist, their states, and routing requests to an AVAILABLE version.

Everything here runs on the server's event loop; loads run in a thread pool. Transitions preserve
availability: a new version is loaded (and warmed up) before the versions it replaces are taken out
of routing, and a version being unloaded first drains its in-flight requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor

from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.config import model_server_config_pb2

from .. import request_log
from ..status import ServingError, failed_precondition, invalid, not_found
from . import warmup
from .inference import DEFAULTS, InferenceOptions
from .servable import Servable, load_error

log = logging.getLogger("tfgate.model_server")
State = get_model_status_pb2.ModelVersionStatus.State


@dataclasses.dataclass
class Version:
    version: int
    path: str
    state: int = State.START
    servable: Servable | None = None
    error: ServingError | None = None
    inflight: int = 0
    drained: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None


@dataclasses.dataclass
class Model:
    name: str
    config: model_server_config_pb2.ModelConfig
    versions: dict[int, Version] = dataclasses.field(default_factory=dict)
    labels: dict[str, int] = dataclasses.field(default_factory=dict)
    removed: bool = False

    def available(self) -> list[Version]:
        return sorted((v for v in self.versions.values() if v.state == State.AVAILABLE),
                      key=lambda v: v.version)


@dataclasses.dataclass
class ManagerOptions:
    tags: list[str]
    max_num_load_retries: int = 5
    load_retry_interval_s: float = 60.0
    file_system_poll_wait_seconds: int = 1
    enable_model_warmup: bool = True
    num_request_iterations_for_warmup: int = 1
    allow_version_labels_for_unavailable_models: bool = False
    num_load_threads: int = 0
    session_config: object = None  # tensorflow ConfigProto for every version's Session
    inference: InferenceOptions = DEFAULTS  # warm-up requests run as served ones


def list_versions(base_path: str) -> dict[int, str]:
    """Integer-named subdirectories that hold a SavedModel file; anything else is not (yet) a version."""
    out: dict[int, str] = {}
    try:
        names = os.listdir(base_path)
    except OSError:
        return out
    for n in names:
        if not n.isdigit():
            continue
        p = os.path.join(base_path, n)
        if os.path.isfile(os.path.join(p, "saved_model.pb")) or os.path.isfile(
                os.path.join(p, "saved_model.pbtxt")):
            out[int(n)] = p
    return out


def aspired(config: model_server_config_pb2.ModelConfig, on_disk: dict[int, str]) -> set[int]:
    policy = config.model_version_policy
    which = policy.WhichOneof("policy_choice")
    if which == "all":
        return set(on_disk)
    if which == "specific":
        return set(policy.specific.versions) & set(on_disk)
    n = policy.latest.num_versions if which == "latest" and policy.latest.num_versions > 0 else 1
    return set(sorted(on_disk)[-n:])


class Manager:
    def __init__(self, opts: ManagerOptions, metrics=None):
        self.opts = opts
        self.metrics = metrics
        self.models: dict[str, Model] = {}
        self._pool = ThreadPoolExecutor(max(1, opts.num_load_threads or 1), thread_name_prefix="load")
        self._poll_task: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self.on_unload = []  # callbacks(servable) so the batcher can drop its queues
        self.on_load = []  # callbacks(servable) once a version serves (server.py: the GC freeze)
        self.request_logs = request_log.RequestLogs()  # each model's `logging_config` (issue 17)

    # ---- config
    @staticmethod
    def validate(cfg: model_server_config_pb2.ModelServerConfig) -> None:
        if cfg.WhichOneof("config") != "model_config_list":
            raise invalid("ServerCore is configured to use model_config_list, but the config does not "
                          "contain a model_config_list.")
        seen = set()
        for mc in cfg.model_config_list.config:
            if not mc.name:
                raise invalid("ModelConfig has no name.")
            if mc.name in seen:
                raise invalid(f"Illegal to list model {mc.name} 2 times in config list")
            seen.add(mc.name)
            if not mc.base_path:
                raise invalid(f"Model {mc.name} has no base_path.")
            if mc.model_platform not in ("", "tensorflow"):
                raise invalid(f"Model {mc.name} requested unsupported platform {mc.model_platform}")

    async def apply_config(self, cfg: model_server_config_pb2.ModelServerConfig) -> None:
        """Replace the served set of models; wait for new models' first loads; then set labels."""
        self.validate(cfg)
        try:
            self.request_logs.configure(request_log.specs_from_model_server_config(cfg))
        except request_log.RequestLogError as e:
            raise invalid(str(e)) from None
        async with self._lock:
            wanted = {mc.name: mc for mc in cfg.model_config_list.config}
            for name, model in list(self.models.items()):
                if name not in wanted and not model.removed:
                    log.info("Unloading model %s (not in the new config)", name)
                    model.removed = True
                    for v in list(model.versions.values()):
                        self._start_unload(model, v)
            for name, mc in wanted.items():
                model = self.models.get(name)
                if model is None or model.removed:
                    old = model
                    model = Model(name=name, config=mc)
                    if old is not None:
                        model.versions = {k: v for k, v in old.versions.items() if v.state == State.END}
                    self.models[name] = model
                else:
                    model.config = mc
            for name in wanted:
                self._reconcile(self.models[name])
            pending = [v.task for name in wanted for v in self.models[name].versions.values()
                       if v.task is not None and not v.task.done()]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        errors = []
        for name, mc in wanted.items():
            model = self.models[name]
            labels = dict(mc.version_labels)
            for ver in labels.values():
                v = model.versions.get(ver)
                if not self.opts.allow_version_labels_for_unavailable_models and (
                        v is None or v.state != State.AVAILABLE):
                    errors.append(failed_precondition(
                        f"Request to assign label to version {ver} of model {name}, which is not currently "
                        f"available for inference"))
            if not errors:
                model.labels = labels
        if errors:
            raise errors[0]

    # ---- polling
    def start_polling(self) -> None:
        if self.opts.file_system_poll_wait_seconds > 0 and self._poll_task is None:
            self._poll_task = asyncio.create_task(self._poll_loop())

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self.opts.file_system_poll_wait_seconds)
            async with self._lock:
                for model in list(self.models.values()):
                    if not model.removed:
                        try:
                            self._reconcile(model)
                        except Exception:  # a bad poll must not end polling
                            log.exception("poll of %s failed", model.name)

    def _reconcile(self, model: Model) -> None:
        on_disk = list_versions(model.config.base_path)
        if not on_disk and not model.versions:
            log.warning("No versions of servable %s found under base path %s", model.name,
                        model.config.base_path)
        want = aspired(model.config, on_disk)
        for ver in sorted(want):
            v = model.versions.get(ver)
            if v is None or (v.state == State.END and v.path != on_disk[ver]) or (
                    v.state == State.END and v.error is None):
                v = Version(ver, on_disk[ver])
                model.versions[ver] = v
                v.task = asyncio.create_task(self._load(model, v))
        any_aspired_ready = any(model.versions[w].state == State.AVAILABLE for w in want
                                if w in model.versions)
        any_aspired_loading = any(model.versions[w].state in (State.START, State.LOADING) for w in want
                                  if w in model.versions)
        for ver, v in list(model.versions.items()):
            if ver in want or v.state != State.AVAILABLE:
                continue
            # Availability first: keep the old version until an aspired one serves, unless its files
            # are gone and nothing is on its way.
            if any_aspired_ready or (ver not in on_disk and not any_aspired_loading):
                self._start_unload(model, v)
        # A failed version whose directory vanished may come back: forget it so it is retried.
        for ver in [k for k, v in model.versions.items()
                    if v.state == State.END and v.error is not None and k not in on_disk]:
            del model.versions[ver]

    async def _load(self, model: Model, v: Version) -> None:
        loop = asyncio.get_running_loop()
        attempts = 1 + max(0, self.opts.max_num_load_retries)
        for attempt in range(attempts):
            v.state = State.LOADING
            log.info("Loading servable: {name: %s version: %d} from %s (attempt %d)", model.name,
                     v.version, v.path, attempt + 1)
            t0 = time.monotonic()
            servable = Servable(model.name, v.version, v.path, self.opts.tags, self.opts.session_config)
            try:
                n = await loop.run_in_executor(self._pool, self._load_blocking, servable)
            except Exception as e:  # any load failure is reported in status, never raised to callers
                err = load_error(e)
                log.error("Loading servable: {name: %s version: %d} failed: %s", model.name, v.version,
                          err.message)
                if self.metrics:
                    self.metrics.load(model.name, "error", time.monotonic() - t0)
                v.error = err
                if attempt + 1 < attempts:
                    log.info("Retrying load of %s version %d in %.1f s", model.name, v.version,
                             self.opts.load_retry_interval_s)
                    await asyncio.sleep(max(0.0, self.opts.load_retry_interval_s))
                    continue
                v.state = State.END
                return
            if self.metrics:
                self.metrics.load(model.name, "ok", time.monotonic() - t0)
                if n:
                    self.metrics.warmup(model.name, n)
            if model.removed:
                v.state = State.END
                return
            v.servable, v.error = servable, None
            v.state = State.AVAILABLE
            log.info("Successfully loaded servable version {name: %s version: %d}", model.name, v.version)
            for cb in self.on_load:
                cb(servable)
            async with self._lock:
                if not model.removed:
                    self._reconcile(model)
            return

    def _load_blocking(self, servable: Servable) -> int:
        servable.load()
        if self.opts.enable_model_warmup:
            return warmup.replay(servable, self.opts.num_request_iterations_for_warmup, self.opts.inference)
        return 0

    def _start_unload(self, model: Model, v: Version) -> None:
        if v.state in (State.START, State.LOADING):
            if v.task is not None:
                v.task.cancel()
            v.state = State.END
            return
        if v.state != State.AVAILABLE:
            return
        v.state = State.UNLOADING
        asyncio.create_task(self._unload(model, v))

    async def _unload(self, model: Model, v: Version) -> None:
        log.info("Unloading servable version {name: %s version: %d}", model.name, v.version)
        if v.inflight:
            await v.drained.wait()
        s, v.servable = v.servable, None
        for cb in self.on_unload:
            cb(s)
        if s is not None:
            s.close()  # drained: no request still runs in its Session
        v.state = State.END
        log.info("Done unloading servable version {name: %s version: %d}", model.name, v.version)

    # ---- routing
    def resolve(self, spec, has_spec: bool = True) -> Version:
        if not has_spec:
            raise invalid("Missing ModelSpec")
        name = spec.name
        if not name:
            raise invalid("ModelSpec has no name specified.")
        model = self.models.get(name)
        choice = spec.WhichOneof("version_choice")
        if choice == "version_label":
            label = spec.version_label
            ver = model.labels.get(label) if model is not None and not model.removed else None
            if ver is None:
                raise invalid(f"Unrecognized servable version label: {label}")
            choice, number = "version", ver
        elif choice == "version":
            number = spec.version.value
        if choice == "version":
            v = model.versions.get(number) if model is not None and not model.removed else None
            if v is None or v.state != State.AVAILABLE:
                raise not_found(f"Servable not found for request: Specific({name}, {number})")
            return v
        avail = model.available() if model is not None and not model.removed else []
        if not avail:
            raise not_found(f"Servable not found for request: Latest({name})")
        return avail[-1]

    @contextlib.contextmanager
    def hold(self, v: Version):
        """Count a request in flight on a version so an unload waits for it."""
        v.inflight += 1
        if v.drained.is_set():
            v.drained.clear()
        try:
            yield v.servable
        finally:
            v.inflight -= 1
            if v.inflight == 0:
                v.drained.set()

    # ---- status
    def status(self, spec, has_spec: bool = True) -> get_model_status_pb2.GetModelStatusResponse:
        if not has_spec:
            raise invalid("Missing ModelSpec")
        name = spec.name
        if not name:
            raise invalid("ModelSpec has no name specified.")
        model = self.models.get(name)
        versions = dict(model.versions) if model is not None else {}
        if not versions:
            raise not_found(f"Could not find any versions of model {name}")
        choice = spec.WhichOneof("version_choice")
        if choice == "version_label":
            ver = model.labels.get(spec.version_label)
            if ver is None:
                raise invalid(f"Unrecognized servable version label: {spec.version_label}")
            choice, number = "version", ver
        elif choice == "version":
            number = spec.version.value
        if choice == "version":
            if number not in versions:
                raise not_found(f"Could not find version {number} of model {name}")
            versions = {number: versions[number]}
        resp = get_model_status_pb2.GetModelStatusResponse()
        for ver in sorted(versions, reverse=True):
            v = versions[ver]
            st = resp.model_version_status.add(version=ver, state=v.state)
            st.status.SetInParent()  # TF Serving always reports a status, "OK" included
            if v.error is not None and v.state == State.END:
                st.status.error_code = v.error.code_value
                st.status.error_message = v.error.message
        return resp

    def ready(self) -> bool:
        return all(m.available() for m in self.models.values() if not m.removed and m.versions)

    async def close(self) -> None:
        if self._poll_task:
            self._poll_task.cancel()
        # every request log record accepted so far is written and its file finished (renamed)
        await asyncio.to_thread(self.request_logs.close)
        self._pool.shutdown(wait=False, cancel_futures=True)
