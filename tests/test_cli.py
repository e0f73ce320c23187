"""The installed `parity` console script: bad input and unexpected errors are one stderr line with exit 2,
a closed stdout pipe is a normal end, and `parity run` flags come from the RunOptions fields."""

from __future__ import annotations

import dataclasses
import errno
import inspect
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from parity.cli import app, main
from parity.cli.run import option_parameters
from parity.run.options import RunOptions

ROOT = Path(__file__).resolve().parent.parent


def console_script() -> str:
    return shutil.which("parity") or str(Path(sys.executable).parent / "parity")


def run_parity(args: list[str], tmp_path: Path, extra_path: Path | None = None, debug: bool = False):
    """Run the installed console script with this checkout first on the path."""
    paths = [str(ROOT)] + ([str(extra_path)] if extra_path else [])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    env.pop("PARITY_DEBUG", None)
    if debug:
        env["PARITY_DEBUG"] = "1"
    return subprocess.run(
        [console_script(), *args], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300
    )


@pytest.fixture
def broken_plugin(tmp_path) -> Path:
    """A recipe plugin (entry point 'boom') whose build function raises RuntimeError."""
    site = tmp_path / "site"
    info = site / "boom_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: boom-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[parity.recipes]\nboom = boom_recipe:build\n")
    (site / "boom_recipe.py").write_text(
        "def build():\n    raise RuntimeError('plugin state\\nis broken')\n", encoding="utf-8"
    )
    return site


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "revize"], "parity: error: unknown recipe 'revize'; did you mean 'revise'?"),
        (["diff", "--a", "revise"], "parity: error: Missing option '--b'."),
        (
            ["show", "revise", "--format", "xml"],
            "parity: error: --format must be rich, yaml or json, got 'xml'",
        ),
        (["diff", "--a", "revise", "--b", "revise", "--samples", "0"], "parity: error: --samples must be"),
        (["refs", "verify", "--ref", "revise", "--checkout", "absent"], "checkout 'absent' does not exist"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    proc = run_parity(args, tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_unexpected_exception_is_one_line_with_a_hint(tmp_path, broken_plugin):
    proc = run_parity(["show", "boom"], tmp_path, extra_path=broken_plugin)
    assert proc.returncode == 2
    assert proc.stderr == (
        "parity: error: RuntimeError: plugin state is broken (set PARITY_DEBUG=1 for the traceback)\n"
    )


def test_parity_debug_shows_the_traceback(tmp_path, broken_plugin):
    proc = run_parity(["show", "boom"], tmp_path, extra_path=broken_plugin, debug=True)
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "RuntimeError: plugin state" in proc.stderr


class ClosedPipe(io.TextIOWrapper):
    """A stdout whose reader has gone: every write of text raises BrokenPipeError (fileno is a scratch file)."""

    def __init__(self, scratch: Path) -> None:
        super().__init__(open(scratch, "wb"), encoding="utf-8")  # noqa: SIM115 - closed with the wrapper

    def write(self, text: str) -> int:
        if text:
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")
        return 0


def test_closed_stdout_is_a_normal_end(tmp_path, monkeypatch, capsys):
    pipe = ClosedPipe(tmp_path / "scratch")
    monkeypatch.setattr(sys, "stdout", pipe)
    assert main(["show", "revise", "--format", "json"]) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_diff_writes_complete_reports_before_printing(tmp_path, monkeypatch):
    out = tmp_path / "reports"
    pipe = ClosedPipe(tmp_path / "scratch")
    monkeypatch.setattr(sys, "stdout", pipe)
    code = main(["diff", "--a", "llmhalluc", "--b", "revise", "--only", "batch", "--out", str(out)])
    assert code == 0
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert (report["a"], report["b"]) == ("llmhalluc", "revise")
    assert {f["axis"] for f in report["findings"]} == {"batch"}
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json", "report.md"]


def test_run_flags_are_the_run_options_fields():
    flagged = [f.name for f in dataclasses.fields(RunOptions) if "flag" in f.metadata]
    assert [p.name for p in option_parameters()] == flagged
    command = next(c for c in app.registered_commands if c.name == "run").callback
    names = list(inspect.signature(command).parameters)
    assert names == ["a", "b", *flagged]
    assert "preflight_samples" not in names
    by_name = {p.name: p for p in option_parameters()}
    assert by_name["align"].default == "none" and by_name["set_a"].default is None
    params = {p.name: p for p in typer.main.get_command(app).commands["run"].params}
    assert (params["deterministic"].opts, params["deterministic"].secondary_opts) == (
        ["--deterministic"],
        ["--no-deterministic"],
    )
    assert params["world_size"].opts == ["--world-size"] and params["world_size"].min == 1
    assert params["max_steps"].help == "Optimizer steps per leg (default: the recipe's epochs)."


def test_leg_options_round_trip():
    opts = RunOptions(align=["batch"], max_steps=3, set_a=["training.seed=1"], out=Path("somewhere"))
    leg = opts.to_leg()
    assert "out" not in leg and "save_aligned" not in leg
    assert json.loads(json.dumps(leg)) == leg
    assert RunOptions.from_leg(leg) == dataclasses.replace(opts, out=None)
