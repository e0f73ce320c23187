"""`run_launches`: legs run in their own process group with a private TMPDIR; whatever they leave running, and
the TMPDIR folder, are gone when it returns or is interrupted."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from parity.run.launch import LegLaunch, run_launches

LEG = r"""
import json, os, subprocess, sys, time
from pathlib import Path
run_dir, leg, then = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
Path(os.environ["TMPDIR"], "elastic-like").mkdir()
(run_dir / f"{leg}.facts.json").write_text(json.dumps({"child": child.pid, "tmpdir": os.environ["TMPDIR"]}))
(run_dir / f"{leg}.jsonl").write_text(json.dumps({"step": 1}) + "\n")
if then == "sleep":
    time.sleep(120)
"""


def _launch(tmp_path: Path, leg: str, then: str) -> LegLaunch:
    script = tmp_path / "leg.py"
    script.write_text(LEG, encoding="utf-8")
    command = [sys.executable, str(script), str(tmp_path), leg, then]
    return LegLaunch(leg=leg, command=command, env={}, config={}, config_path="")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    return status != "Z"


def _wait_dead(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


def test_a_finished_leg_leaves_no_child_and_no_tmpdir(tmp_path):
    codes = run_launches([_launch(tmp_path, "a", "exit")], False, tmp_path, poll_s=0.1)
    facts = json.loads((tmp_path / "a.facts.json").read_text())
    assert codes == {"a": 0}
    assert Path(facts["tmpdir"]).name.startswith("parity-legs-")
    assert not Path(facts["tmpdir"]).exists()
    assert _wait_dead(facts["child"])


def test_an_interrupt_ends_the_running_leg_and_its_children(tmp_path):
    def interrupt(leg: str, step: int, record: dict) -> None:
        raise KeyboardInterrupt

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_launches([_launch(tmp_path, "b", "sleep")], False, tmp_path, on_step=interrupt, poll_s=0.1)
    facts = json.loads((tmp_path / "b.facts.json").read_text())
    assert time.monotonic() - started < 10
    assert not Path(facts["tmpdir"]).exists()
    assert _wait_dead(facts["child"])


def test_sigterm_ends_the_running_leg_and_says_which_signal(tmp_path):
    from parity.capture.processes import Interrupted

    def terminate(leg: str, step: int, record: dict) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends

    with pytest.raises(Interrupted) as stopped:
        run_launches([_launch(tmp_path, "c", "sleep")], False, tmp_path, on_step=terminate, poll_s=0.1)
    facts = json.loads((tmp_path / "c.facts.json").read_text())
    assert stopped.value.signum == signal.SIGTERM
    assert not Path(facts["tmpdir"]).exists()
    assert _wait_dead(facts["child"])
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is put back
