"""Every process a capture run starts, and ending them all: the run's session, its descendants, and any process
carrying the run's marker variable (a `setsid` or `nohup ... & disown` child keeps it); SIGINT and SIGTERM
turned into one exception, so the capture ends its processes and removes its files before exiting."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

RUN_MARKER = "PARITY_CAPTURE_RUN"
"""Set to a fresh token in every run's environment; whatever the recipe starts inherits it."""
INTERRUPT_GRACE_SECONDS = 5.0
"""How long an interrupted or timed-out run's processes get to exit after SIGTERM before SIGKILL."""
LEFTOVER_GRACE_SECONDS = 2.0
"""How long processes still running after a run ended (background children) get after SIGTERM."""
_PR_SET_CHILD_SUBREAPER = 36
_PROC = Path("/proc")
_leaders: set[int] = set()
"""Run leaders started by this process (children that are not orphans of a recipe)."""
_adopting = False


class Interrupted(BaseException):
    """SIGINT or SIGTERM reached parity during a capture; `signum` gives the exit code 128 + signum. Like
    KeyboardInterrupt it is no Exception; unlike it, command-line frameworks pass it through to parity's exit."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def adopt_orphans() -> bool:
    """Make this process the subreaper of its descendants (Linux): a recipe's process whose parent exits is
    re-parented here instead of to init, so it is still found and ended. For a process that only captures
    (the console script): other code's orphans would be adopted too. Returns whether it took effect."""
    global _adopting
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        _adopting = libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        _adopting = False
    return _adopting


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, session id) of a process, or None when it is gone."""
    try:
        data = (_PROC / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()
    return fields[0].decode(), int(fields[1]), int(fields[3])


def _marker(pid: int) -> bytes | None:
    """The RUN_MARKER entry of a process's environment (None without one, or when it cannot be read)."""
    try:
        variables = (_PROC / str(pid) / "environ").read_bytes().split(b"\0")
    except OSError:
        return None
    prefix = RUN_MARKER.encode() + b"="
    return next((entry for entry in variables if entry.startswith(prefix)), None)


class ProcessTree:
    """The processes of one capture run: its leader (a new session), every descendant, and every process
    carrying its marker, wherever it was re-parented."""

    def __init__(self, leader: int, token: str) -> None:
        self.leader = leader
        self.marker = f"{RUN_MARKER}={token}".encode()
        _leaders.add(leader)

    def members(self) -> dict[int, str]:
        """{pid: state} of every process of the run (zombies included)."""
        if not _PROC.is_dir():
            return {}
        table = {}
        for name in os.listdir(_PROC):
            if name.isdigit() and (stat := _stat(int(name))) is not None:
                table[int(name)] = stat
        own = os.getpid()
        markers = {pid: _marker(pid) for pid in table if pid != own}
        found = {pid for pid, (_, _, session) in table.items() if session == self.leader}
        found |= {pid for pid, marker in markers.items() if marker == self.marker}
        if self.leader in table:
            found.add(self.leader)
        if _adopting:  # re-parented here from a recipe's exited process: ours unless another run's marker
            found |= {
                pid
                for pid, (_, parent, _) in table.items()
                if parent == own and pid not in _leaders and markers.get(pid) in (None, self.marker)
            }
        children: dict[int, list[int]] = defaultdict(list)
        for pid, (_, parent, _) in table.items():
            children[parent].append(pid)
        stack = list(found)
        while stack:
            for child in children[stack.pop()]:
                if child not in found:
                    found.add(child)
                    stack.append(child)
        found.discard(own)
        return {pid: table[pid][0] for pid in found}

    def alive(self) -> set[int]:
        """Members that still run (not zombies)."""
        return {pid for pid, state in self.members().items() if state not in ("Z", "X")}

    def _reap_adopted(self) -> None:
        """Collect the exit status of re-parented members, so no zombie of the recipe stays behind."""
        own = os.getpid()
        for pid, state in self.members().items():
            if pid != self.leader and state in ("Z", "X") and (_stat(pid) or ("", 0, 0))[1] == own:
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(pid, os.WNOHANG)

    def _send(self, pids: set[int], sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.leader, sig)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    def end(self, grace: float) -> None:
        """SIGTERM to every member, SIGKILL to what still runs after `grace` seconds; until none is left."""
        running = self.alive()
        if running:
            self._send(running, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while running and time.monotonic() < deadline:
                time.sleep(0.05)
                self._reap_adopted()
                now = self.alive()
                self._send(now - running, signal.SIGTERM)  # started since the last look
                running = now
            for _ in range(100):
                running = self.alive()
                if not running:
                    break
                self._send(running, signal.SIGKILL)
                time.sleep(0.02)
        self._reap_adopted()

    def close(self) -> None:
        _leaders.discard(self.leader)


class _InterruptState:
    def __init__(self) -> None:
        self.received: int | None = None
        self.deferring = 0


_state: _InterruptState | None = None


@contextlib.contextmanager
def interrupts_raise() -> Iterator[None]:
    """While inside: the first SIGINT or SIGTERM raises Interrupted in the main thread; later ones are ignored
    so the clean-up it starts is never cut short. Outside the main thread this does nothing."""
    global _state
    if threading.current_thread() is not threading.main_thread() or _state is not None:
        yield
        return
    state = _InterruptState()

    def handler(signum: int, _frame) -> None:
        if state.received is not None:
            return
        state.received = signum
        if not state.deferring:
            raise Interrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    _state = state
    try:
        yield
    finally:
        _state = None
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """A step that must not be cut in half (putting a capture in place): a signal arriving inside raises
    Interrupted once the step is done."""
    state = _state
    if state is None:
        yield
        return
    state.deferring += 1
    try:
        yield
    finally:
        state.deferring -= 1
    if state.received is not None and not state.deferring:
        raise Interrupted(state.received)


def interrupted() -> int | None:
    """The signal that interrupted the capture, if one did."""
    return None if _state is None else _state.received
