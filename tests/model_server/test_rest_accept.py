"""The REST port accepts a burst of connections in one loop turn, on the server's own loop (uvloop), and
serves them: libuv alone accepts one per turn, which kept clients of a busy server waiting (issue 20)."""

from __future__ import annotations

import asyncio
import socket
import threading

from aiohttp import web

from tfgate.serving import event_loop
from tfgate.serving.model_server.rest import ListenSite
from tfgate.serving.model_server.server import REST_BACKLOG
from tfgate.serving.processes import free_port

N = 64


def test_a_burst_of_connections_is_accepted_at_once_and_served():
    port = free_port()

    async def hello(request):
        return web.Response(text="ok")

    async def go():
        app = web.Application()
        app.router.add_get("/", hello)
        runner = web.AppRunner(app)
        await runner.setup()
        site = ListenSite(runner, "127.0.0.1", port, REST_BACKLOG)
        await site.start()
        loop = asyncio.get_running_loop()
        clients: list[socket.socket] = []
        connected = threading.Event()

        def connect_all():  # the kernel completes the handshakes; the server's loop is held meanwhile
            for _ in range(N):
                clients.append(socket.create_connection(("127.0.0.1", port)))
            connected.set()

        threading.Thread(target=connect_all, daemon=True).start()
        loop.call_soon(connected.wait, 60)  # one turn that holds the loop until all N wait in the queue
        turns_until_all = None
        for turn in range(1, 200):  # one sleep(0) is one loop turn
            await asyncio.sleep(0)
            if len(runner.server.connections) == N:
                turns_until_all = turn
                break
        try:
            assert connected.is_set()
            # libuv's own accept takes one connection per turn: N turns and more
            assert turns_until_all is not None and turns_until_all <= 8, turns_until_all

            def ask(sock: socket.socket) -> bytes:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                data = b""
                while not data.endswith(b"ok"):
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                return data

            answers = await asyncio.gather(*(asyncio.to_thread(ask, s) for s in clients[:8]))
            assert all(a.startswith(b"HTTP/1.1 200") for a in answers)
        finally:
            for s in clients:
                s.close()
            await runner.cleanup()
        # stopped: the port no longer accepts
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            refused = False
        except ConnectionRefusedError:
            refused = True
        assert refused

    event_loop.run(go())
