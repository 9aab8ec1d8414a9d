"""The model server keeps its long-lived heap out of the garbage collector's full passes (gc.freeze, issue 20)
and still frees an unloaded version's graph, whose reference cycles only the collector can break."""

from __future__ import annotations

import asyncio
import gc
import weakref

from tests.model_server import models
from tfgate.serving.model_server.manager import Manager, ManagerOptions, State
from tfgate.serving.model_server.server import HeapFreezer
from tfgate.serving.model_server.textproto import parse_model_server_config


def _config(base, versions: list[int]):
    policy = " ".join(f"versions: {v}" for v in versions)
    return parse_model_server_config(
        f'model_config_list {{ config {{ name: "hp" base_path: "{base}" model_platform: "tensorflow" '
        f"model_version_policy {{ specific {{ {policy} }} }} }} }}".encode())


async def _wait(cond) -> None:
    for _ in range(600):
        if cond():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


def test_loaded_versions_are_frozen_and_an_unloaded_graph_is_freed(tmp_path):
    base = tmp_path / "hp"
    models.make_trailing_one(base, 1)
    models.make_trailing_one(base, 2)

    async def go():
        manager = Manager(ManagerOptions(tags=["serve"], file_system_poll_wait_seconds=0, enable_model_warmup=False))
        HeapFreezer().attach(manager)
        try:
            await manager.apply_config(_config(base, [1]))
            await asyncio.sleep(0)  # the pass scheduled by the load
            versions = manager.models["hp"].versions
            assert versions[1].state == State.AVAILABLE
            graph = weakref.ref(versions[1].servable._session.graph)
            assert gc.is_tracked(graph()) and gc.get_freeze_count() > 0
            frozen = gc.get_freeze_count()
            gc.collect()
            assert graph() is not None and gc.get_freeze_count() == frozen  # a full pass left the heap alone

            await manager.apply_config(_config(base, [2]))  # 2 loads, then 1 is unloaded
            await _wait(lambda: 1 not in versions or versions[1].state == State.END)
            await asyncio.sleep(0)  # the unfreeze-collect-freeze pass scheduled by the unload
            assert graph() is None, "the unloaded version's graph is still alive"
            assert gc.get_freeze_count() > 0
        finally:
            await manager.close()

    try:
        asyncio.run(go())
    finally:
        gc.unfreeze()  # the rest of the test session collects as usual
