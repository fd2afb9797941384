"""Phases of a run: ``finemon mark NAME`` tells the daemon recording into a directory that a
phase starts now (``target_running``, ``load_started``, ``warmup_done``).

While it records, ``finemon run`` serves a control socket, a Unix stream socket at
``DIR/.finemon.sock`` (hidden: dataset readers, the size limit and the uploader skip it). A
socket address holds at most 107 bytes of path: for a longer output dir the socket goes to
``/run/finemon/<device>-<inode of the dir>.sock`` (``$TMPDIR/finemon-<uid>/`` when ``/run``
cannot be written) and ``DIR/.finemon.sock.path`` holds that path. Both are removed when
recording stops.

The protocol is one JSON line each way: the client sends ``{"mark": "NAME"}``, the daemon
answers ``{"ok": true, "name": NAME, "time": "<ISO 8601 UTC>", "run_id": ...}`` once the mark
is in the run's manifest, or ``{"ok": false, "error": "<one line>"}``. The daemon records each
mark in the manifest (``phases: [{name, time}]``) and as the gauge ``finemon.phase`` with the
label ``phase=NAME`` (its value: the mark's Unix time in seconds) from the first tick taken after
the mark on. ``POST /mark`` on the Prometheus port does the same (see :mod:`monitor.daemon`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import socket
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from common.contract import CONTROL_SOCKET, CONTROL_SOCKET_POINTER
from monitor.config import DEFAULT_OUTPUT_DIR
from monitor.manifest import iso_utc

log = logging.getLogger("finemon")

#: The gauge of the phases; label ``phase``, value the mark's Unix time in seconds.
PHASE_METRIC: Final = "finemon.phase"
#: The label naming the phase.
PHASE_LABEL: Final = "phase"
#: Longest path a Unix socket address holds (108 bytes with the terminating NUL).
MAX_SOCKET_PATH_BYTES: Final = 107
#: Where the socket of an output dir with a long path goes (the first that can be written).
SHORT_SOCKET_DIRS: Final = (Path("/run/finemon"),)
#: Longest request or answer line, in bytes.
MAX_LINE_BYTES: Final = 4096
#: Seconds a client of the control socket has to send its line, and ``finemon mark`` to wait.
CLIENT_TIMEOUT_SECONDS: Final = 5.0

_PHASE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


class MarkError(Exception):
    """A mark that could not be delivered or recorded; the message is one line."""


@dataclass(frozen=True, slots=True)
class Mark:
    """A phase mark: its name and when the daemon received it (Unix seconds)."""

    name: str
    time_seconds: float


def check_phase_name(name: str) -> str:
    """``name`` if it is a valid phase name: 1 to 64 characters of ``[A-Za-z0-9._:-]``, starting
    with a letter or digit (it becomes a label value and a file name fragment). Raises
    MarkError otherwise."""
    if not _PHASE_NAME.match(name):
        raise MarkError(
            f"invalid phase name {name!r}: use 1 to 64 characters of A-Z a-z 0-9 . _ : -, "
            "starting with a letter or digit"
        )
    return name


def _short_socket_dir() -> Path:
    """The first folder for short socket paths that can be created and written."""
    fallback = Path(tempfile.gettempdir()) / f"finemon-{os.getuid()}"
    for folder in (*SHORT_SOCKET_DIRS, fallback):
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(folder, os.W_OK | os.X_OK):
            return folder
    raise OSError(f"no folder for a short socket path ({SHORT_SOCKET_DIRS[0]}, {fallback})")


def socket_path(output_dir: Path) -> tuple[Path, bool]:
    """Where the control socket of ``output_dir`` (an existing directory) is bound, and whether
    that is a short path the pointer file names (the dir's own path is too long). Raises
    OSError when no short folder can be written."""
    inside = output_dir.absolute() / CONTROL_SOCKET
    if len(os.fsencode(inside)) <= MAX_SOCKET_PATH_BYTES:
        return inside, False
    # Named by the dir's device and inode: one name per directory on the machine (a hash of
    # its path would load hashlib's OpenSSL, 3 MB of the daemon's memory).
    info = os.stat(output_dir)
    return _short_socket_dir() / f"{info.st_dev:x}-{info.st_ino:x}.sock", True


def _answers(path: Path) -> bool:
    """Whether something listens on the Unix socket ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(os.fsencode(path))
        except OSError:
            return False
    return True


def _read_line(conn: socket.socket) -> bytes:
    """One line from ``conn`` (without its newline), at most :data:`MAX_LINE_BYTES`."""
    data = b""
    while b"\n" not in data:
        chunk = conn.recv(MAX_LINE_BYTES)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_LINE_BYTES:
            raise ValueError(f"line longer than {MAX_LINE_BYTES} bytes")
    return data.split(b"\n", 1)[0]


#: What answers a mark request: the phase name in, the answer (a JSON object) out.
MarkAnswer = Callable[[str], dict[str, object]]


def answer_mark(on_mark: Callable[[str], Mark], name: str, run_id: str) -> dict[str, object]:
    """The answer to a request to mark ``name``: ``on_mark`` records it (raising MarkError to
    refuse it); ``{"ok": true, "name", "time", "run_id"}`` or ``{"ok": false, "error"}``."""
    try:
        mark = on_mark(check_phase_name(name))
    except MarkError as exc:
        return {"ok": False, "error": str(exc)}
    return {"ok": True, "name": mark.name, "time": iso_utc(mark.time_seconds), "run_id": run_id}


class ControlServer:
    """The control socket of one recording run: :meth:`start` binds it and serves marks in a
    thread, each answered by ``answer(name)`` (:func:`answer_mark`); :meth:`close` stops and
    removes it."""

    def __init__(self, output_dir: Path, answer: MarkAnswer) -> None:
        self.output_dir = output_dir
        self._answer_mark = answer
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.path: Path | None = None
        self._pointer: Path | None = None

    def start(self) -> None:
        """Bind the socket (replacing a stale one a killed run left) and serve it. Raises
        OSError when it cannot be bound, or another live finemon serves this output dir."""
        path, short = socket_path(self.output_dir)
        if os.path.lexists(path):
            if _answers(path):
                raise OSError(f"another finemon serves marks for {self.output_dir} at {path}")
            path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(os.fsencode(path))
            sock.listen(8)
            sock.settimeout(0.25)  # the accept loop looks at the stop flag this often
            if short:
                pointer = self.output_dir / CONTROL_SOCKET_POINTER
                temp = pointer.with_name(f"{pointer.name}.{os.getpid()}.tmp")
                temp.write_text(f"{path}\n")
                os.replace(temp, pointer)
                self._pointer = pointer
        except OSError:
            sock.close()
            path.unlink(missing_ok=True)
            raise
        self._sock, self.path = sock, path
        self._thread = threading.Thread(target=self._serve, name="finemon-control", daemon=True)
        self._thread.start()
        log.info("marks: control socket %s", path)

    def _serve(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                log.debug("control socket: accept failed", exc_info=True)
                continue
            with conn:
                self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        conn.settimeout(CLIENT_TIMEOUT_SECONDS)
        try:
            try:
                request = json.loads(_read_line(conn))
                name = request["mark"] if isinstance(request, dict) else None
                if not isinstance(name, str):
                    raise ValueError('expected {"mark": "NAME"}')
            except (ValueError, KeyError) as exc:
                answer: dict[str, object] = {"ok": False, "error": f"bad request: {exc}"}
            else:
                answer = self._answer_mark(name)
            conn.sendall(json.dumps(answer).encode() + b"\n")
        except OSError:
            log.debug("control socket: a client went away", exc_info=True)

    def close(self) -> None:
        """Stop serving and remove the socket and the pointer file."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None
        if self._pointer is not None:
            self._pointer.unlink(missing_ok=True)
            self._pointer = None


def _find_socket(output_dir: Path) -> Path:
    """The control socket of the daemon recording into ``output_dir``: its own, or where the
    pointer file says. Raises MarkError when there is neither."""
    pointer = output_dir / CONTROL_SOCKET_POINTER
    try:
        named = pointer.read_text().strip()
    except FileNotFoundError:
        named = ""
    except OSError as exc:
        raise MarkError(f"cannot read {pointer}: {exc.strerror or exc}") from None
    if named:
        return Path(named)
    inside = output_dir / CONTROL_SOCKET
    if os.path.lexists(inside):
        return inside
    if not output_dir.is_dir():
        raise MarkError(f"no finemon run is recording into {output_dir}: no such directory")
    raise MarkError(f"no finemon run is recording into {output_dir} (no control socket {inside})")


def send_mark(output_dir: Path, name: str, timeout_seconds: float = CLIENT_TIMEOUT_SECONDS) -> str:
    """Tell the daemon recording into ``output_dir`` that phase ``name`` starts now; returns
    the time it recorded (ISO 8601 UTC). Raises MarkError (one line) for a bad name, when no
    daemon records there, or when it refuses the mark."""
    check_phase_name(name)
    path = _find_socket(output_dir)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_seconds)
        try:
            sock.connect(os.fsencode(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise MarkError(
                f"no finemon run is recording into {output_dir} (its control socket {path} is "
                "stale: the run stopped)"
            ) from None
        except OSError as exc:
            reason = exc.strerror or exc
            raise MarkError(f"cannot reach the control socket {path}: {reason}") from None
        try:
            sock.sendall(json.dumps({"mark": name}).encode() + b"\n")
            line = _read_line(sock)
        except (OSError, ValueError) as exc:
            raise MarkError(f"no answer from the control socket {path}: {exc}") from None
    try:
        answer = json.loads(line)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise MarkError(f"no answer from the control socket {path} (the run is stopping?)")
    if not answer.get("ok"):
        raise MarkError(str(answer.get("error", "the mark was refused")))
    return str(answer.get("time"))


# ---------------------------------------------------------------------- finemon mark
MARK_DESCRIPTION = """\
Tell the finemon run recording into --output-dir, on this node, that a phase starts now (for
example target_running, load_started, warmup_done). The run records the mark in its manifest
(phases: [{name, time}]) and as the series finemon.phase{phase=NAME} from its next tick on;
finemon compare --phase NAME keeps what follows it. It goes over the run's control socket
(DIR/.finemon.sock); with --prometheus-port, POST /mark?name=NAME on that port does the same.
Exit code 0 once recorded, 1 when no run records into DIR (or it refused the mark), 2 for a bad
name.
"""


def _phase_name(text: str) -> str:
    try:
        return check_phase_name(text)
    except MarkError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_mark_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``finemon mark``."""
    parser.add_argument(
        "--output-dir",
        default=DEFAULT_OUTPUT_DIR,
        metavar="DIR",
        help="the --output-dir of the finemon run to mark (default: %(default)s)",
    )
    parser.add_argument("name", metavar="NAME", type=_phase_name, help="the phase that starts")


def run_mark(args: argparse.Namespace) -> int:
    """``finemon mark [--output-dir DIR] NAME``; returns the exit code (1: not delivered)."""
    try:
        when = send_mark(Path(args.output_dir), args.name)
    except MarkError as exc:
        print(f"finemon mark: error: {exc}", file=sys.stderr)
        return 1
    print(f"phase {args.name} marked at {when}")
    return 0
