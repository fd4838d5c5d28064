"""A TCP proxy in front of PostgreSQL that can lose the answer to a COMMIT: it
forwards the COMMIT, so the server commits, and closes the client's socket before
the answer comes back (what a network drop or a restarting PgBouncer does at that
instant). The server and the driver are real; only the wire is cut."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import sqlalchemy as sa

COMMIT = b"Q\x00\x00\x00\x0bCOMMIT\x00"  # the simple-query message psycopg sends


class CommitCutter:
    def __init__(self, host: str, port: int) -> None:
        self.armed = threading.Event()
        self.cut = 0
        self._target = (host, port)
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen()
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._target)
            doomed = threading.Event()
            threading.Thread(
                target=self._pipe, args=(client, server, client, doomed), daemon=True
            ).start()
            threading.Thread(
                target=self._pipe, args=(server, client, None, doomed), daemon=True
            ).start()

    def _pipe(
        self,
        src: socket.socket,
        dst: socket.socket,
        client: socket.socket | None,
        doomed: threading.Event,
    ) -> None:
        # NOTE: the connection is doomed before the COMMIT goes on, so that the
        # server's answer, however fast, is never passed back.
        try:
            while data := src.recv(65536):
                cutting = client is not None and COMMIT in data and self.armed.is_set()
                if cutting:
                    self.armed.clear()
                    doomed.set()
                elif doomed.is_set():
                    return
                dst.sendall(data)
                if cutting:
                    assert client is not None
                    self.cut += 1
                    client.shutdown(socket.SHUT_RDWR)
                    return
        except OSError:
            pass
        finally:
            for end in (src, dst):
                with suppress(OSError):
                    end.close()

    def close(self) -> None:
        self._listener.close()


@contextmanager
def commit_cutter(url: str | sa.URL) -> Iterator[tuple[CommitCutter, sa.URL]]:
    """A proxy to the database of ``url``, and the URL that goes through it."""
    target = sa.make_url(url)
    cutter = CommitCutter(target.host or "127.0.0.1", target.port or 5432)
    try:
        yield cutter, target.set(host="127.0.0.1", port=cutter.port, query={"sslmode": "disable"})
    finally:
        cutter.close()
