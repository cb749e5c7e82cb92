"""Messages between the processes of one machine that share a SQLite database.

PostgreSQL carries wake-ups and live changes between processes with LISTEN/NOTIFY. SQLite has
nothing of the kind, yet `hookyard serve` runs ingest and workers as separate processes: a
worker must wake within milliseconds of a commit, and a change a worker commits must reach the
live sockets of the API processes. So each process that listens binds a Unix datagram socket
in a directory named after the database file; a sender writes one datagram to every socket
there. A message is its channel's name, a newline, and the payload.

The directory is private to the user running hookyard (mode 0700, checked on every start and
never followed through a link): another local user can neither wake workers nor forge live
changes. A datagram is best-effort like a NOTIFY to a process that is not listening: a worker
that misses a wake-up still finds its work on its next timer (the inbox is the truth), and a
lost live change is the same as a socket that lagged.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import socket
import stat
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from hookyard.logs import log

MAX_DATAGRAM = 60_000  # bytes; the payload of a larger message is split by the caller's records
LISTING_SECONDS = 0.5  # how long a listing of the other sockets is reused
_SEND_TIMEOUT = 0.05  # a receiver whose buffer is full gets this long, then the datagram drops

Handler = Callable[[bytes], None]


def bus_directory(database_path: str) -> Path:
    """The directory of the processes sharing the SQLite file `database_path` (short, so that
    socket paths stay within the 108 bytes Unix allows)."""
    digest = hashlib.sha256(os.path.realpath(database_path).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"hookyard-{os.getuid()}-{digest}"


class LocalBus:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        _private_directory(directory)
        self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sender.settimeout(_SEND_TIMEOUT)
        self._send_lock = threading.Lock()
        self._peers: list[str] = []
        self._wants: set[str] = set()  # channels another process wants (marker files)
        self._listed_at = 0.0
        self._own: str | None = None  # our socket's path once we listen
        self._handlers: dict[bytes, list[Handler]] = {}
        self._receiver: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()

    @classmethod
    def for_sqlite_url(cls, url: str) -> LocalBus | None:
        """The bus of a SQLite database URL; None for PostgreSQL or an in-memory database
        (one process only) or where Unix sockets are not available."""
        if not url.startswith("sqlite") or ":memory:" in url or not hasattr(socket, "AF_UNIX"):
            return None
        path = url.split(":///", 1)[1].split("?", 1)[0] if ":///" in url else ""
        if not path:
            return None
        try:
            return cls(bus_directory(path))
        except OSError as exc:
            log.warning("bus_unavailable", error=str(exc)[:200])
            return None

    # -- receiving --------------------------------------------------------------------------

    def listen(self, channel: str, handler: Handler) -> None:
        """Call `handler(payload)` (on the bus thread) for every message of `channel` sent by
        another process from now on."""
        self._handlers.setdefault(channel.encode(), []).append(handler)
        if self._receiver is None:
            self._bind()

    def _bind(self) -> None:
        path = str(self.directory / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.sock")
        receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        with contextlib.suppress(OSError):  # a larger buffer absorbs bursts of live changes
            receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        receiver.bind(path)
        os.chmod(path, 0o600)
        receiver.settimeout(0.5)  # to notice close()
        self._receiver, self._own = receiver, path
        self._thread = threading.Thread(target=self._receive, name="hookyard-bus", daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        assert self._receiver is not None
        while not self._closed.is_set():
            try:
                message = self._receiver.recv(MAX_DATAGRAM + 100)
            except TimeoutError:
                continue
            except OSError:
                if self._closed.is_set():
                    return
                raise
            channel, _, payload = message.partition(b"\n")
            for handler in self._handlers.get(channel, ()):
                try:
                    handler(payload)
                except Exception as exc:  # one handler's bug must not stop the bus
                    log.warning("bus_handler_failed", channel=channel.decode(errors="replace"),
                                error=str(exc)[:200])  # fmt: skip

    # -- interest -----------------------------------------------------------------------------

    def want(self, channel: str, wanted: bool) -> None:
        """Say whether this process wants `channel`'s messages now (a marker file beside its
        socket): senders whose messages cost something to make ask `wanted` first."""
        if self._own is None:
            return
        marker = Path(f"{self._own[: -len('.sock')]}.{channel}")
        if wanted:
            marker.touch(mode=0o600)
        else:
            with contextlib.suppress(FileNotFoundError):
                marker.unlink()

    def wanted(self, channel: str) -> bool:
        """Whether another process wants `channel` (as of the last listing, at most
        LISTING_SECONDS old)."""
        with self._send_lock:
            self._list_peers()
            return channel in self._wants

    # -- sending ----------------------------------------------------------------------------

    def send(self, channel: str, payload: bytes = b"", *, wait: bool = False) -> None:
        """Send to every other listening process of this database (best effort). Without
        `wait`, a receiver whose queue is full is skipped at once (a wake-up it already has
        pending is enough); with it, it gets a moment to read (live changes)."""
        message = channel.encode() + b"\n" + payload
        if len(message) > MAX_DATAGRAM + 100:
            raise ValueError(f"bus message of {len(message)} bytes is too large")
        with self._send_lock:
            for peer in self._list_peers():
                try:
                    if wait:
                        self._sender.sendto(message, peer)
                    else:
                        self._sender.sendto(message, socket.MSG_DONTWAIT, peer)
                except (ConnectionRefusedError, FileNotFoundError):
                    # Its process is gone (killed): nobody will ever read that socket.
                    with contextlib.suppress(OSError):
                        os.unlink(peer)
                    self._listed_at = 0.0
                except TimeoutError:
                    log.warning("bus_receiver_full", channel=channel)
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.ENOBUFS):
                        raise
                    if wait:
                        log.warning("bus_receiver_full", channel=channel)

    def _list_peers(self) -> list[str]:
        now = time.monotonic()
        if now - self._listed_at > LISTING_SECONDS:
            try:
                names = os.listdir(self.directory)
            except FileNotFoundError:
                names = []
            own_stem = self._own[: -len(".sock")] if self._own else None
            sockets = {name[: -len(".sock")] for name in names if name.endswith(".sock")}
            self._peers = [
                str(self.directory / f"{stem}.sock")
                for stem in sorted(sockets)
                if str(self.directory / stem) != own_stem
            ]
            self._wants = set()
            for name in names:
                stem, _, channel = name.rpartition(".")
                if channel == "sock" or not stem:
                    continue
                if stem in sockets and str(self.directory / stem) != own_stem:
                    self._wants.add(channel)
                elif stem not in sockets:  # its process is gone
                    with contextlib.suppress(OSError):
                        os.unlink(self.directory / name)
            self._listed_at = now
        return self._peers

    def close(self) -> None:
        self._closed.set()
        if self._thread is not None:
            # Wake the receiver now rather than at its next timeout (up to half a second):
            # an empty datagram to our own socket. If it cannot be sent, the timeout still ends it.
            with contextlib.suppress(OSError), self._send_lock:
                self._sender.sendto(b"", self._own or "")
            self._thread.join(2.0)
        for sock in (self._receiver, self._sender):
            if sock is not None:
                sock.close()
        if self._own is not None:
            stem = self._own[: -len(".sock")]
            for path in [
                self._own,
                *(str(p) for p in Path(self.directory).glob(f"{Path(stem).name}.*")),
            ]:
                with contextlib.suppress(OSError):
                    os.unlink(path)


def _private_directory(path: Path) -> None:
    """Create `path` with mode 0700, or check that the one there is ours, private and not a
    link (so nobody else can put sockets in it or read through it)."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise PermissionError(f"{path} is not a directory of this user")
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise PermissionError(f"{path} is open to other users (mode {oct(info.st_mode)})")
