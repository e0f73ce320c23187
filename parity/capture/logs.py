"""A run's output, streamed to disk with a bounded head and tail (and a note of what was cut between them),
secrets redacted, and the one line a failed run is reported by: the exception that ended it, printable."""

from __future__ import annotations

import collections
import os
import re
import select
import threading
from pathlib import Path

LOG_LIMIT = 20 * 1024 * 1024
"""Bytes of output a capture keeps (split between its runs; each keeps its first and last half)."""
_CHUNK = 64 * 1024
_ESCAPE = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-Z\\-_])")
"""Terminal escape sequences: CSI (colours, clear screen), OSC (window title) and two-byte escapes."""
_TRACEBACK = "Traceback (most recent call last):"
_LOG_RECORD = re.compile(r"\[(ERROR|WARNING|INFO|DEBUG|CRITICAL)\]|\b(ERROR|WARNING|INFO|DEBUG)\s*[:|-]")
"""A logging framework's record (`[ERROR] ...`, `... - ERROR - ...`): never the exception that ended a run."""
MESSAGE_LIMIT = 600
"""Characters of recipe output an error line quotes."""


def printable(text: str, limit: int | None = None) -> str:
    """Text safe to print on one terminal line: escape sequences and control characters removed, whitespace
    runs collapsed; cut at `limit` characters, with an ellipsis."""
    text = _ESCAPE.sub("", text)
    text = "".join(char if char.isprintable() else " " for char in text)
    text = " ".join(text.split())
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "<redacted>")
    return text


class BoundedLog:
    """A log file that keeps the first `head` and the last `tail` bytes written to it; what lies between is
    replaced by one line saying how many bytes were cut. Memory use is bounded by `tail`."""

    def __init__(self, path: Path, head: int, tail: int) -> None:
        self.path = path
        self.head = head
        self.tail = tail
        self._file = open(path, "ab")  # noqa: SIM115 - closed by close()
        self._written = 0
        self._tail: collections.deque[bytes] = collections.deque()
        self._tail_bytes = 0
        self._cut = 0

    def write(self, data: bytes) -> None:
        room = self.head - self._written
        if room > 0:
            self._file.write(data[:room])
            self._written += min(room, len(data))
            data = data[room:]
        if not data:
            return
        self._tail.append(data)
        self._tail_bytes += len(data)
        while self._tail_bytes - len(self._tail[0]) >= self.tail:
            dropped = self._tail.popleft()
            self._tail_bytes -= len(dropped)
            self._cut += len(dropped)

    def close(self, secrets: list[str] | None = None) -> None:
        """Write the kept tail (after the note of what was cut) and redact `secrets` in the whole file."""
        tail = b"".join(self._tail)
        if len(tail) > self.tail:
            self._cut += len(tail) - self.tail
            tail = tail[len(tail) - self.tail :]
        if self._cut:
            note = (
                f"\n[parity capture: {self._cut} bytes of output cut here; the log keeps the first "
                f"{self.head} and the last {self.tail} bytes]\n"
            )
            self._file.write(note.encode())
        self._file.write(tail)
        self._file.close()
        self._tail.clear()
        if secrets:
            text = self.path.read_bytes().decode("utf-8", errors="surrogateescape")
            self.path.write_bytes(redact(text, secrets).encode("utf-8", errors="surrogateescape"))


class OutputPump:
    """A thread copying a pipe into a BoundedLog until the pipe closes or `stop()` is called."""

    def __init__(self, fd: int, log: BoundedLog) -> None:
        self.fd = fd
        self.log = log
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._pump, name="parity-capture-log", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            while not self._stopped.is_set():
                ready, _, _ = select.select([self.fd], [], [], 0.1)
                if not ready:
                    continue
                data = os.read(self.fd, _CHUNK)
                if not data:
                    return
                self.log.write(data)
        except (OSError, ValueError):
            return

    def finish(self, timeout: float = 2.0) -> None:
        """Wait for the pipe to close (every writer gone), at most `timeout` seconds, then stop reading."""
        self._thread.join(timeout)
        self._stopped.set()
        self._thread.join(1.0)
        os.close(self.fd)


def tail_lines(log: Path, limit: int = 1024 * 1024) -> list[str]:
    """The lines of a log's last `limit` bytes (none for a missing log)."""
    if not log.is_file():
        return []
    with open(log, "rb") as handle:
        handle.seek(max(0, log.stat().st_size - limit))
        return handle.read().decode("utf-8", errors="replace").splitlines()


def last_exception(log: Path) -> str:
    """The line naming the exception that ended the run: the final line of the log's last traceback (a
    launcher's `[rank0]: ` prefix removed); without a traceback, the last line naming an error that is not a
    logging framework's record."""
    lines = tail_lines(log)
    starts = [index for index, line in enumerate(lines) if line.rstrip().endswith(_TRACEBACK)]
    if starts:
        header = lines[starts[-1]].rstrip()
        prefix = header[: len(header) - len(_TRACEBACK)]
        for line in lines[starts[-1] + 1 :]:
            body = line[len(prefix) :] if prefix and line.startswith(prefix) else line
            if body.strip() and not body[:1].isspace():
                return body.strip()
    for line in reversed(lines[-300:]):
        stripped = line.strip()
        if not stripped or _LOG_RECORD.search(stripped) or stripped.startswith("[parity capture]"):
            continue
        lowered = stripped.lower()
        if "error" in lowered or "not found" in lowered or "no such file" in lowered:
            return stripped
    return ""
