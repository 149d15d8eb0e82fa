"""A TCP proxy the tests control, between the app and its database server (127.0.0.1 only).

``blackhole()`` makes it a network path that stops delivering: it keeps accepting and reading
(the kernel still acknowledges every byte, so only the client's own deadline can notice) but
forwards nothing either way, on open connections and new ones. ``cut()`` resets every open
connection, as a database restart or a failover does. ``restore()`` forwards again for new
connections; connections that lost bytes in the black hole are closed then, since their
protocol state is gone.
"""

from __future__ import annotations

import socket
import struct
import threading
from contextlib import suppress
from typing import Any


class TCPProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._blackholed = False
        self._closed = False
        self._sockets: list[tuple[socket.socket, bool]] = []  # (socket, saw the black hole)
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()

    def __enter__(self) -> TCPProxy:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- control
    def blackhole(self) -> None:
        with self._lock:
            self._blackholed = True
            self._sockets = [(s, True) for s, _ in self._sockets]

    def restore(self) -> None:
        with self._lock:
            self._blackholed = False
            lost = [s for s, saw in self._sockets if saw]
            self._sockets = [(s, saw) for s, saw in self._sockets if not saw]
        for sock in lost:
            _reset(sock)

    def cut(self) -> None:
        """Reset every open connection (new ones are forwarded as before)."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock, _ in sockets:
            _reset(sock)

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.cut()

    # -- forwarding
    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            with self._lock:
                blackholed = self._blackholed
                self._sockets.append((client, blackholed))
            if blackholed:
                threading.Thread(target=self._pump, args=(client, None), daemon=True).start()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._sockets.append((server, False))
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket | None) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if dst is None or self._blackholed:
                    continue  # swallowed: acknowledged by the kernel, never delivered
                dst.sendall(data)
        except OSError:
            pass  # reset by the other side or by cut()
        finally:
            if dst is not None and not self._blackholed:
                _reset(dst)


def _reset(sock: socket.socket) -> None:
    """Close with a RST (SO_LINGER 0), as a crashed peer or a dropped route looks."""
    with suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with suppress(OSError):
        sock.close()
