"""How fast `parity capture` runs and how it says so: an exited command is not waited on, world sizes run side by
side from fresh copies without changing what is captured, the manifest says how each world size was captured,
and a pinned environment's modules are compiled once."""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import pytest

from parity.capture import CaptureOptions, capture
from parity.capture.environment import RECORD_FILE, compile_bytecode
from parity.capture.environment import _with_bytecode as with_bytecode
from parity.capture.logs import BoundedLog
from parity.capture.pipeline import CAPTURED_AS, concurrent_runs
from parity.capture.reader import load_capture
from parity.capture.runner import run_command, subprocess_environment
from parity.errors import ParityError

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "capture"


def _run(tmp_path: Path, script: str, timeout: float = 60, cancel: threading.Event | None = None):
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    environment = {"PATH": os.environ["PATH"], "STATE": str(state)}
    started = time.monotonic()
    log = BoundedLog(tmp_path / "log.txt", head=1024, tail=1024)
    try:
        outcome = run_command(
            ["bash", "-c", script], tmp_path, environment, state, timeout, log, cancel=cancel
        )
    finally:
        log.close()
    return outcome, time.monotonic() - started


def test_a_command_that_exits_after_marking_is_not_waited_on(tmp_path):
    outcome, seconds = _run(tmp_path, 'echo "{}" > "$STATE/stopped.json"; exit 86')
    assert (outcome.status, outcome.returncode) == ("captured", 86)
    assert seconds < 2.0  # no grace period once the process has ended


def test_a_command_still_running_after_marking_is_stopped_after_the_grace(tmp_path):
    outcome, seconds = _run(tmp_path, 'echo "{}" > "$STATE/stopped.json"; sleep 60')
    assert outcome.status == "captured"
    assert 4.5 < seconds < 12.0  # the 5 s grace, then TERM


def test_the_cpu_time_of_the_process_tree_is_measured(tmp_path):
    burn = f"{sys.executable} -c 'import time; t = time.process_time(); exec(\"while time.process_time() - t < 0.6: pass\")'"
    outcome, _ = _run(tmp_path, f'{burn}; echo "{{}}" > "$STATE/stopped.json"')
    assert outcome.status == "captured"
    assert outcome.cpu_seconds is not None and 0.5 < outcome.cpu_seconds < 5.0


def test_a_cancelled_run_is_killed_at_once(tmp_path):
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    outcome, seconds = _run(tmp_path, "sleep 60", cancel=cancel)
    assert outcome.status == "cancelled" and seconds < 5.0
    outcome, seconds = _run(tmp_path, "sleep 60", cancel=cancel)
    assert (outcome.status, outcome.returncode) == ("cancelled", None) and seconds < 0.5


def test_runs_side_by_side_have_private_home_tmp_and_datasets_cache(tmp_path):
    shared = tmp_path / "capture"
    environments = [
        subprocess_environment(
            shared,
            shared / n / "checkout",
            shared / "bin",
            Path(sys.executable),
            shared / "c.json",
            {},
            shared / n,
        )
        for n in ("world-size-1", "world-size-2")
    ]
    for name, environment in zip(("world-size-1", "world-size-2"), environments, strict=True):
        assert environment["HOME"] == str(shared / name / "home")
        assert environment["TMPDIR"] == str(shared / name / "tmp")
        assert environment["HF_DATASETS_CACHE"] == str(shared / name / "datasets-cache")
        assert environment["HF_HOME"] == str(shared / "hf")  # the seeded hub cache is read by both
        assert (shared / name / "home").is_dir() and (shared / name / "tmp").is_dir()


def test_how_many_runs_side_by_side(monkeypatch):
    monkeypatch.delenv("PARITY_CAPTURE_JOBS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert (concurrent_runs(4), concurrent_runs(1)) == (2, 1)
    monkeypatch.setenv("PARITY_CAPTURE_JOBS", "3")
    assert (concurrent_runs(4), concurrent_runs(2)) == (3, 2)
    monkeypatch.setenv("PARITY_CAPTURE_JOBS", "0")
    with pytest.raises(ParityError, match="PARITY_CAPTURE_JOBS=0"):
        concurrent_runs(4)


def _fake_environment(root: Path) -> Path:
    site = root / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    (site / "package").mkdir(parents=True)
    (site / "package" / "__init__.py").write_text("VALUE = 1\n")
    (site / "broken.py").write_text("def (:\n")
    (root / "bin").mkdir()
    (root / "bin" / "python").symlink_to(sys.executable)
    (root / RECORD_FILE).write_text(json.dumps({"installed": {}, "exclude_newer": None, "notes": []}))
    return site


def test_a_cached_environment_is_compiled_once_and_the_record_says_so(tmp_path):
    site = _fake_environment(tmp_path)
    tag = f"cpython-{sys.version_info[0]}{sys.version_info[1]}"
    record = with_bytecode(tmp_path, json.loads((tmp_path / RECORD_FILE).read_text()))
    assert (site / "package" / "__pycache__" / f"__init__.{tag}.pyc").is_file()
    assert record["bytecode"]["compiled"] is True and record["bytecode"]["files_not_compiled"] == 1
    assert json.loads((tmp_path / RECORD_FILE).read_text())["bytecode"] == record["bytecode"]
    compiled_at = (site / "package" / "__pycache__" / f"__init__.{tag}.pyc").stat().st_mtime_ns
    assert with_bytecode(tmp_path, record) is record  # the second lookup compiles nothing
    assert (site / "package" / "__pycache__" / f"__init__.{tag}.pyc").stat().st_mtime_ns == compiled_at


def test_an_environment_without_site_packages_is_reported_not_compiled(tmp_path):
    assert compile_bytecode(tmp_path) == {"compiled": False, "reason": "no site-packages folder"}


def _shell_capture(root: Path, out: str, jobs: str) -> dict:
    """The shell fixture captured at 1, 2, 4 and 8 with `jobs` world sizes side by side."""
    previous = os.environ.get("PARITY_CAPTURE_JOBS")
    os.environ["PARITY_CAPTURE_JOBS"] = jobs
    try:
        options = CaptureOptions(
            checkout=root / "shell_launcher",
            out=root / out,
            command=("bash", "-c", "python preprocess.py && bash train.sh"),
            data={"openai/gsm8k": root / "gsm8k"},
            env={"HUB_USER_ID": "someone"},
            world_sizes=(1, 2, 4, 8),
            force=True,
        )
        return capture(options).manifest
    finally:
        if previous is None:
            os.environ.pop("PARITY_CAPTURE_JOBS", None)
        else:
            os.environ["PARITY_CAPTURE_JOBS"] = previous


@pytest.fixture(scope="module")
def shell_captures(tmp_path_factory) -> tuple[Path, dict, dict]:
    """(folder, manifest with 4 runs side by side, manifest with one run at a time) of the shell fixture."""
    root = tmp_path_factory.mktemp("speed")
    shutil.copytree(FIXTURES / "shell_launcher", root / "shell_launcher")
    shutil.copytree(FIXTURES / "data" / "gsm8k", root / "gsm8k")
    return root, _shell_capture(root, "together", "4"), _shell_capture(root, "alone", "1")


def test_side_by_side_and_one_at_a_time_capture_the_same_recipe(shell_captures):
    root, together, alone = shell_captures
    assert together["launch"] == alone["launch"]
    table = [
        (row["world_size"], row["gradient_accumulation_steps"], row["global_batch"])
        for row in alone["launch"]
    ]
    assert table == [(1, 4, 32), (2, 2, 32), (4, 1, 32), (8, 1, 64)]
    for size in ("1", "2", "4", "8"):
        args = [
            json.loads((root / out / "world_sizes" / size / "training_args.json").read_text())
            for out in ("together", "alone")
        ]
        assert args[0]["fields"] == args[1]["fields"]
    assert load_capture(root / "together").training_args.fields["gradient_accumulation_steps"] == 4
    assert {key: value["side_by_side"] for key, value in together["captured_as"].items()} == dict.fromkeys(
        ("1", "2", "4", "8"), 4
    )
    assert {key: value["side_by_side"] for key, value in alone["captured_as"].items()} == dict.fromkeys(
        ("1", "2", "4", "8"), 1
    )
    caches = {key: value["datasets_cache"] for key, value in alone["captured_as"].items()}
    assert caches["1"] == "empty"
    assert [caches[key].split(" (")[0] for key in ("2", "4", "8")] == [
        "a copy of world size 1's",
        "a copy of world size 2's",
        "a copy of world size 4's",
    ]


def test_the_manifest_says_how_each_world_size_was_captured(shell_captures):
    root, _, manifest = shell_captures
    modes = {key: (value["mode"], value["stopped_at"]) for key, value in manifest["captured_as"].items()}
    assert modes == {
        "1": ("full", "constructed"),
        "2": ("args", "entry"),
        "4": ("args", "entry"),
        "8": ("args", "entry"),
    }
    assert manifest["captured_as"]["2"]["how"] == CAPTURED_AS["args"]
    assert manifest["captured_as"]["1"]["checkout"] == "a fresh copy of the checkout"
    phases = manifest["timings"]["per_world_size_phases"]
    assert all(
        phases["1"][name] >= 0 for name in ("to_trainer_entry", "trainer_init", "writing_capture", "exit")
    )
    assert (phases["8"]["trainer_init"], phases["8"]["writing_capture"]) == (None, None)
    assert phases["8"]["to_trainer_entry"] > 0
    writing = manifest["timings"]["writing_seconds"]
    assert sorted(writing) == ["collated", "model", "prepared", "raw", "tokenizer"]
    runs = {row["launcher"]["script_runs"] for row in manifest["launch"]}
    assert runs == {"in the launcher's one process (runpy, as `python` would run it)"}
    cpu = manifest["timings"]["per_world_size_cpu_seconds"]
    assert sorted(cpu) == ["1", "2", "4", "8"] and all(value > 0.5 for value in cpu.values())
    log = (root / "alone" / "log.txt").read_text()
    banners = [line for line in log.splitlines() if line.startswith("===== parity capture")]
    assert banners == [
        "===== parity capture: world size 1 (full) =====",
        "===== parity capture: world size 2 (args) =====",
        "===== parity capture: world size 4 (args) =====",
        "===== parity capture: world size 8 (args) =====",
    ]
