"""A fault-injecting HTTP proxy on loopback, for reliability tests.

It sits between the CLI and a local server and, for a seeded share of requests, drops the connection
before forwarding, cuts the answer off after part of it, delays it, or answers `503` itself. Each
request gets its own upstream connection (the proxy asks for `Connection: close`), so the shares
apply per request even though clients keep connections alive.
"""

from __future__ import annotations

import ipaddress
import random
import selectors
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass

FAULTS = ("drop", "cut", "delay", "error")
MAX_HEAD = 64 * 1024
ERROR_BODY = b'{"detail":"injected by the fault proxy"}'


@dataclass
class FaultShares:
    """The share of requests that get each fault (their sum is at most 1)."""

    drop: float = 0.0
    cut: float = 0.0
    delay: float = 0.0
    error: float = 0.0
    delay_seconds: float = 0.3

    def __post_init__(self) -> None:
        total = self.drop + self.cut + self.delay + self.error
        if not 0.0 <= total <= 1.0 or min(self.drop, self.cut, self.delay, self.error) < 0:
            msg = f"fault shares must be between 0 and 1 and sum to at most 1, got {self}"
            raise ValueError(msg)


class FaultProxy:
    """A threaded TCP proxy on 127.0.0.1 that injects faults into a share of HTTP requests.

    Use it as a context manager; `url` is what to point ARGILLA_API_URL at. `shares` may be replaced
    while it runs (e.g. set to `FaultShares()` to check results through a healthy path).
    """

    def __init__(
        self,
        upstream_url: str,
        shares: FaultShares | None = None,
        *,
        seed: int = 0,
        max_connections: int = 32,
        io_timeout: float = 120.0,
    ) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(upstream_url)
        host = parts.hostname or ""
        if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
            msg = f"the fault proxy only forwards to loopback, not {host!r}"
            raise ValueError(msg)
        self.upstream = ("127.0.0.1" if host == "localhost" else host, int(parts.port or 80))
        self.shares = shares or FaultShares()
        self.counts: Counter[str] = Counter()
        self._trip: tuple[bytes, int, FaultShares] | None = None
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_connections)
        self._io_timeout = io_timeout
        self._stopping = threading.Event()
        self._threads: set[threading.Thread] = set()
        self._sockets: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._acceptor = threading.Thread(target=self._accept_loop, name="fault-proxy", daemon=True)

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start accepting connections."""
        self._acceptor.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, close every open connection and wait for the worker threads."""
        self._stopping.set()
        self._acceptor.join(timeout)
        self._listener.close()
        with self._lock:
            sockets, threads = list(self._sockets), list(self._threads)
        for sock in sockets:
            _close(sock)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in threads if t.is_alive()]
        if alive:
            msg = f"fault proxy threads did not stop: {alive}"
            raise RuntimeError(msg)

    def trip_after(self, marker: bytes, count: int, shares: FaultShares) -> None:
        """Switch to `shares` once `count` requests whose request line contains `marker` have been let through.

        A deterministic way to break the network part-way through a run, whatever the machine's speed.
        """
        with self._lock:
            self._trip = (marker, count, shares)

    # -- internals --------------------------------------------------------------------------------

    def _choose(self, head: bytes) -> str:
        with self._lock:
            fault = self._draw()
            if fault == "pass" and self._trip is not None:
                marker, left, after = self._trip
                if marker in head.split(b"\r\n", 1)[0]:
                    left -= 1
                    self._trip = (marker, left, after) if left > 0 else None
                    if left == 0:
                        self.shares = after
            self.counts[fault] += 1
            return fault

    def _draw(self) -> str:
        """One fault (or "pass") drawn by the current shares; the caller holds the lock."""
        draw = self._rng.random()
        edge = 0.0
        for fault in FAULTS:
            edge += getattr(self.shares, fault)
            if draw < edge:
                return fault
        return "pass"

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            while not self._slots.acquire(timeout=0.2):
                if self._stopping.is_set():
                    _close(client, reset=True)
                    return
            thread = threading.Thread(
                target=self._serve, args=(client,), name="fault-proxy-conn", daemon=True
            )
            with self._lock:
                self._threads.add(thread)
                self._sockets.add(client)
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            client.settimeout(self._io_timeout)
            head, rest = _read_head(client)
            if head is None:
                return
            fault = self._choose(head)
            if fault == "drop":
                _close(client, reset=True)
                return
            if fault == "error":
                client.sendall(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(ERROR_BODY)}\r\nConnection: close\r\n\r\n".encode()
                    + ERROR_BODY
                )
                return
            if fault == "delay":
                self._stopping.wait(self.shares.delay_seconds)
            upstream = socket.create_connection(self.upstream, timeout=self._io_timeout)
            with self._lock:
                self._sockets.add(upstream)
            upstream.sendall(_close_after(head) + rest)
            self._relay(
                client, upstream, cut_after=_cut_point(self._rng, self._lock) if fault == "cut" else None
            )
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    _close(sock)
                    with self._lock:
                        self._sockets.discard(sock)
            with self._lock:
                self._threads.discard(threading.current_thread())
            self._slots.release()

    def _relay(self, client: socket.socket, upstream: socket.socket, *, cut_after: int | None) -> None:
        """Copy bytes both ways until the server closes; with `cut_after`, reset after that many bytes back."""
        sent_back = 0
        with selectors.DefaultSelector() as selector:
            selector.register(client, selectors.EVENT_READ, upstream)
            selector.register(upstream, selectors.EVENT_READ, client)
            while not self._stopping.is_set():
                events = selector.select(timeout=0.2)
                for key, _ in events:
                    source = key.fileobj
                    assert isinstance(source, socket.socket)
                    data = source.recv(65536)
                    if not data:
                        return
                    target: socket.socket = key.data
                    if source is upstream and cut_after is not None:
                        data = data[: max(0, cut_after - sent_back)]
                        target.sendall(data)
                        sent_back += len(data)
                        if sent_back >= cut_after:
                            _close(client, reset=True)
                            return
                        continue
                    target.sendall(data)


def _read_head(sock: socket.socket) -> tuple[bytes | None, bytes]:
    """The request line and headers, and whatever body bytes came with them."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        if len(buffer) > MAX_HEAD:
            return None, b""
        chunk = sock.recv(65536)
        if not chunk:
            return None, b""
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    return head, rest


def _close_after(head: bytes) -> bytes:
    """The head with `Connection: close`, so that the upstream connection carries this request only."""
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")]
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _cut_point(rng: random.Random, lock: threading.Lock) -> int:
    """Cut before the answer, inside its headers (about 250 bytes) or inside its body."""
    with lock:
        return rng.choice((0, 100, rng.randint(300, 4000)))


def _close(sock: socket.socket, *, reset: bool = False) -> None:
    try:
        if reset:  # an RST, as a crashed peer or a broken network gives, rather than a clean FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass
