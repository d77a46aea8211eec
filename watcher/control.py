"""The local channel between the command line and the running daemon, which only its user can
open. It carries one JSON request and one JSON reply per connection (never pickle: a message
is data, not code), and knows nothing of what they mean (`watcher.commands_control` does).

POSIX: a Unix socket `control.sock` in the state folder, mode 0600. It is bound inside a
private folder (mode 0700) and renamed into place, so it is never reachable with a looser
mode, and the process umask, which every thread shares, is never touched. A socket left by a
killed daemon is replaced only when nothing answers on it. On Linux the server also checks
the caller's user id (SO_PEERCRED). A state folder whose path is too long for a socket
address (about 100 bytes) gets its socket in the user's runtime folder instead, under a name
derived from the state folder's path.

Windows: a named pipe whose name derives from the state folder; each side proves to the other
that it knows a random key that the daemon writes at start into `control.key` in the state
folder: the folder's permissions guard the key (the default state folder, in the user's
profile, is the user's alone). This path is written for Windows but has not been run there;
the key exchange itself is tested here on a Unix socket.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import socket
import stat
import struct
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from watcher.errors import WatcherError

log = logging.getLogger(__name__)

SOCKET_FILE_NAME = "control.sock"
KEY_FILE_NAME = "control.key"
REPLY_SECONDS = 60.0  # `retry --failed` moves every original back: it may take a while
REQUEST_SECONDS = 5.0  # a caller that connects and says nothing is dropped after this
MAX_MESSAGE = 1 << 20
# sun_path holds 108 bytes on Linux, 104 on macOS and the BSDs, with the terminating NUL.
MAX_SOCKET_PATH = 100
_HEADER = struct.Struct("!I")
# Python has no Unix sockets on Windows: a named pipe (multiprocessing's family) and a key instead.
KEYED_FAMILY: str | None = "AF_PIPE" if sys.platform == "win32" else None

Message = dict[str, Any]
Handler = Callable[[Message], Message]


class ControlError(WatcherError):
    pass


class _Channel(Protocol):
    def send(self, message: Message) -> None: ...
    def receive(self) -> Message: ...
    def close(self) -> None: ...


def _encode(message: Message) -> bytes:
    return json.dumps(message, allow_nan=False).encode("utf-8")


def _decode(data: bytes) -> Message:
    try:
        message = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ControlError(f"a message on the control channel is not JSON ({exc})") from None
    if not isinstance(message, dict):
        raise ControlError("a message on the control channel is not a JSON object")
    return message


# -- POSIX: a Unix socket --------------------------------------------------------------------


class _SocketChannel:
    """One connection: a 4-byte length, then the JSON, each way."""

    def __init__(self, sock: socket.socket, timeout: float):
        sock.settimeout(timeout)
        self._sock = sock

    def send(self, message: Message) -> None:
        data = _encode(message)
        self._sock.sendall(_HEADER.pack(len(data)) + data)

    def receive(self) -> Message:
        (size,) = _HEADER.unpack(self._exactly(_HEADER.size))
        if size > MAX_MESSAGE:
            raise ControlError(f"a message on the control channel is too long ({size} bytes)")
        return _decode(self._exactly(size))

    def _exactly(self, size: int) -> bytes:
        data = bytearray()
        while len(data) < size:
            chunk = self._sock.recv(size - len(data))
            if not chunk:
                raise ControlError("the other side of the control channel hung up")
            data += chunk
        return bytes(data)

    def close(self) -> None:
        self._sock.close()


def socket_path(state_dir: Path) -> Path:
    """Where the daemon of this state folder listens (the client and the server agree)."""
    path = state_dir.absolute() / SOCKET_FILE_NAME
    if len(os.fsencode(path)) <= MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(os.fsencode(state_dir.absolute())).hexdigest()[:16]
    return _runtime_dir() / f"pdfocr-watcher-{digest}.sock"


def _runtime_dir() -> Path:
    """The user's own folder for sockets: $XDG_RUNTIME_DIR, else a private one in /tmp."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_absolute():
        return Path(runtime)
    return Path(tempfile.gettempdir()) / f"pdfocr-watcher-{os.getuid()}"


def _private_folder(folder: Path, *, create: bool) -> None:
    """Makes sure the folder of a socket outside the state folder is ours alone (in a shared
    /tmp another user may have made it first), creating it if asked."""
    if create:
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700, parents=True)
    try:
        info = folder.lstat()
    except FileNotFoundError:
        return  # nothing there, so no daemon listens there either
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise ControlError(
            f"{folder} is not a folder that only you can open; remove it (or set "
            "XDG_RUNTIME_DIR), or give the watcher a shorter `[files] state_dir`"
        )


class _UnixListener:
    def __init__(self, path: Path):
        self.path = path
        self._sock = _bind_private(path)
        self._inode = path.lstat().st_ino

    def accept(self) -> _Channel | None:
        """The next caller, or None for one that is not this user (Linux tells us)."""
        sock, _ = self._sock.accept()
        if hasattr(socket, "SO_PEERCRED"):
            try:
                creds = sock.getsockopt(
                    socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")
                )
            except OSError:
                creds = struct.pack("3i", 0, -1, -1)  # gone already, or unknown: not ours
            _pid, uid, _gid = struct.unpack("3i", creds)
            if uid != os.geteuid():
                log.warning("refused a control connection from user id %d", uid)
                sock.close()
                return None
        return _SocketChannel(sock, REQUEST_SECONDS)

    def wake(self) -> None:
        """Ends a blocked accept(): Linux wakes it on shutdown(), other systems when we
        connect to ourselves (which fails if someone removed the socket file)."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(1.0)
            sock.connect(str(self.path))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.path.lstat().st_ino == self._inode:  # still ours, not a newer daemon's
                self.path.unlink()
        self._sock.close()


def _bind_private(path: Path) -> socket.socket:
    """A listening socket at `path`, mode 0600 from its first moment there."""
    if path.name != SOCKET_FILE_NAME:
        _private_folder(path.parent, create=True)
    _refuse_live(path)
    staging_dir = Path(tempfile.mkdtemp(prefix=".c", dir=path.parent))  # mode 0700
    staging = staging_dir / "s"  # as long as control.sock's name: it fits if the path does
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(staging))
        os.chmod(staging, 0o600)
        sock.listen(8)
        os.replace(staging, path)  # atomic: a stale socket is replaced, never half there
    except OSError as exc:
        sock.close()
        raise ControlError(
            f"the control socket {path} cannot be created ({exc.strerror or exc})"
        ) from None
    finally:
        with contextlib.suppress(OSError):
            staging.unlink()
        with contextlib.suppress(OSError):
            staging_dir.rmdir()
    return sock


def _refuse_live(path: Path) -> None:
    """Raises when something answers at `path` (or it is not a socket); a socket that nobody
    answers on was left by a killed daemon and may be replaced."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise ControlError(f"{path} is in the way of the control socket; remove it")
    with socket.socket(socket.AF_UNIX) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            log.info("replacing the control socket a stopped daemon left behind")
            return
        except OSError:
            pass  # busy or odd: something is there
    raise ControlError(
        f"another process answers on the control socket {path}; the command line may be "
        "talking to it instead of this daemon"
    )


def _connect_unix(state_dir: Path, timeout: float) -> _Channel | None:
    path = socket_path(state_dir)
    if path.name != SOCKET_FILE_NAME:
        _private_folder(path.parent, create=False)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        return None  # nothing listens: no daemon (or one killed, which left its socket)
    except OSError as exc:
        sock.close()
        raise ControlError(f"the daemon's control socket {path}: {exc.strerror or exc}") from None
    return _SocketChannel(sock, timeout)


# -- Windows: a named pipe and a key ---------------------------------------------------------


class _Bytes(Protocol):
    """What we use of a multiprocessing connection (a PipeConnection on Windows)."""

    def send_bytes(self, buf: bytes) -> None: ...
    def recv_bytes(self, maxlength: int | None = None) -> bytes: ...
    def poll(self, timeout: float | None = 0.0) -> bool: ...
    def close(self) -> None: ...


class _ConnectionChannel:
    """A multiprocessing connection, used only through its byte messages (never pickled)."""

    def __init__(self, conn: _Bytes, timeout: float):
        self._conn = conn
        self._timeout = timeout

    def send(self, message: Message) -> None:
        self._conn.send_bytes(_encode(message))

    def receive(self) -> Message:
        if not self._conn.poll(self._timeout):
            raise ControlError("no answer on the control channel in time")
        try:
            return _decode(self._conn.recv_bytes(MAX_MESSAGE))
        except EOFError:
            raise ControlError("the other side of the control channel hung up") from None

    def close(self) -> None:
        self._conn.close()


def pipe_address(state_dir: Path) -> str:
    digest = hashlib.sha256(str(state_dir.absolute()).lower().encode("utf-8")).hexdigest()[:24]
    return rf"\\.\pipe\pdfocr-watcher-{digest}"


class _KeyedListener:
    """A listener whose callers must know the key (the Windows one: family AF_PIPE). The
    challenge is exchanged after accept, with the caller's timeout."""

    def __init__(self, address: str, family: str, key_file: Path):
        from multiprocessing import connection  # only here: the commands start quicker

        self._address, self._family = address, family
        self._key = _write_key(key_file)
        try:
            self._listener = connection.Listener(address, family=family)
        except OSError as exc:
            raise ControlError(
                f"the control channel {address} cannot be opened ({exc.strerror or exc}); "
                "another process may be using it"
            ) from None

    def accept(self) -> _Channel | None:
        from multiprocessing import AuthenticationError, connection

        conn = self._listener.accept()
        try:
            connection.deliver_challenge(conn, self._key)
            connection.answer_challenge(conn, self._key)
        except (AuthenticationError, OSError, EOFError) as exc:
            log.warning("refused a control connection that does not know the key (%s)", exc)
            conn.close()
            return None
        return _ConnectionChannel(conn, REQUEST_SECONDS)

    def wake(self) -> None:
        from multiprocessing import connection

        with contextlib.suppress(OSError):
            connection.Client(self._address, family=self._family).close()

    def close(self) -> None:
        self._listener.close()


def _write_key(path: Path) -> bytes:
    """A fresh key for this run, in a file readable by its owner only, written whole."""
    key = secrets.token_bytes(32)
    fd, staging = tempfile.mkstemp(prefix=".control-", dir=path.parent)  # mode 0600
    try:
        os.write(fd, key.hex().encode("ascii"))
    finally:
        os.close(fd)
    os.replace(staging, path)
    return key


def _connect_keyed(address: str, family: str, key_file: Path, timeout: float) -> _Channel | None:
    from multiprocessing import AuthenticationError, connection

    try:
        key = bytes.fromhex(key_file.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        return None  # no daemon ever opened the channel here
    except (OSError, ValueError) as exc:
        raise ControlError(f"the control key {key_file} cannot be read ({exc})") from None
    try:
        conn = connection.Client(address, family=family, authkey=key)
    except (FileNotFoundError, ConnectionRefusedError):
        return None
    except AuthenticationError:
        raise ControlError(
            f"the process on {address} does not know the key in {key_file}: it is not this "
            "state folder's daemon"
        ) from None
    except OSError as exc:
        raise ControlError(f"the control channel {address}: {exc.strerror or exc}") from None
    return _ConnectionChannel(conn, timeout)


# -- both: the server and the client ---------------------------------------------------------


class _Listener(Protocol):
    def accept(self) -> _Channel | None: ...
    def wake(self) -> None: ...
    def close(self) -> None: ...


class ControlServer:
    """Answers requests with `handle` on a thread of its own, one caller at a time (each is
    brief, and a silent caller is dropped after REQUEST_SECONDS)."""

    def __init__(self, state_dir: Path, handle: Handler):
        self._state_dir = state_dir
        self._handle = handle
        self._listener: _Listener | None = None
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="control", daemon=True)

    def start(self) -> ControlServer:
        """Opens the channel; raises ControlError (in words) when it cannot."""
        if KEYED_FAMILY is None:
            self._listener = _UnixListener(socket_path(self._state_dir))
        else:
            address, key_file = pipe_address(self._state_dir), self._state_dir / KEY_FILE_NAME
            self._listener = _KeyedListener(address, KEYED_FAMILY, key_file)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._listener is None:
            return
        self._closing.set()
        self._listener.wake()
        self._thread.join(timeout=REQUEST_SECONDS + REPLY_SECONDS)
        self._listener.close()
        self._listener = None

    def _serve(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._closing.is_set():
            try:
                channel = listener.accept()
            except OSError as exc:
                if not self._closing.is_set():  # out of file handles, say: try again soon
                    log.warning("a control connection could not be taken (%s)", exc)
                    self._closing.wait(1.0)
                continue
            if channel is None:
                continue
            try:
                if not self._closing.is_set():
                    self._answer(channel)
            finally:
                channel.close()

    def _answer(self, channel: _Channel) -> None:
        try:
            request = channel.receive()
        except (ControlError, OSError) as exc:
            log.debug("a control request could not be read: %s", exc)
            return
        try:
            reply = self._handle(request)
        except Exception as exc:
            log.exception("the control request %r failed", request.get("command"))
            reply = {"ok": False, "error": f"the daemon could not do it ({exc}); see its log"}
        with contextlib.suppress(OSError):
            channel.send(reply)


def ask(state_dir: Path, request: Message, timeout: float = REPLY_SECONDS) -> Message | None:
    """Sends one request to the daemon of `state_dir` and returns its reply, or None when no
    daemon listens there. Raises ControlError when one listens but does not answer right."""
    if KEYED_FAMILY is None:
        channel = _connect_unix(state_dir, timeout)
    else:
        key_file = state_dir / KEY_FILE_NAME
        channel = _connect_keyed(pipe_address(state_dir), KEYED_FAMILY, key_file, timeout)
    if channel is None:
        return None
    try:
        channel.send(request)
        return channel.receive()
    except OSError as exc:
        raise ControlError(f"the daemon did not answer ({exc})") from None
    finally:
        channel.close()
