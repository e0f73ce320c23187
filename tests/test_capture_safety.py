"""`parity capture` and `capture:DIR` never destroy, leak or mislead: a table of bad inputs and faults run
through the installed console script (exit code, one stderr line naming the cause, no traceback, nothing outside
--out changed, no process of the recipe and no temporary folder left), Ctrl-C and SIGTERM during a recipe, and
a cache that never answers for changed inputs.

Each case runs in a fresh working directory: `ck/` (a shell checkout), `trl_ck/` (TRL's `trl sft --config`),
`data/` and `pc/` (local rows), `caps/keep/` (a sibling of the default --out `caps/out`), `outside/` (what links
in a checkout point to), and `cap/` (a copy of one real capture, for `capture:DIR` cases). Recipes write their
process ids to a file outside that directory, which is hashed before and after. Cases are run by a process forked
from one that imported parity and TRL once, so most take a fraction of a second; a few run a real capture.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).parent / "parity"
REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "capture"
TIMEOUT = 120.0
FAIL = "exit 3"
"""The default recipe: record its process id, then end without constructing a trainer."""


@dataclass
class Workspace:
    """One case's folders: `cwd` (hashed before and after), and outside it the process ids, HOME, parity's cache
    folder and a private TMPDIR that must be empty afterwards."""

    root: Path
    cwd: Path
    pids: Path
    home: Path
    cache: Path
    tmpdir: Path
    base_capture: Path

    def fill(self, text: str) -> str:
        for name, value in (
            ("{pids}", self.pids),
            ("{home}", self.home),
            ("{cwd}", self.cwd),
            ("{root}", self.root),
            ("{python}", Path(sys.executable)),
        ):
            text = text.replace(name, str(value))
        return text

    def recorded_pids(self) -> list[int]:
        return [int(line) for line in self.pids.read_text().split()] if self.pids.is_file() else []


@dataclass(frozen=True)
class Case:
    """One input: the arguments, how the workspace is prepared, and what must come out."""

    id: str
    argv: tuple[str, ...]
    says: str = ""
    """Text the error line (or, for exit 0, stdout) must contain."""
    code: int = 2
    setup: Callable[[Workspace], None] | None = None
    env: dict[str, str] = field(default_factory=dict)
    changes: tuple[str, ...] = ()
    """Paths under cwd allowed to change (a capture's --out)."""
    check: Callable[[Workspace, str, str], None] | None = None
    """Further assertions on (workspace, stdout, stderr)."""
    as_root: bool = True
    """False: meaningless as root (permissions do not bind root)."""


def capture(*extra: str, script: str = FAIL, checkout: str = "ck", out: str = "caps/out") -> tuple[str, ...]:
    """`parity capture` of a shell recipe that records its process id first."""
    command = ("--", "bash", "-c", f"echo $$ >> {{pids}}; {script}") if script is not None else ()
    return ("capture", "--checkout", checkout, "--out", out, "--world-size", "1", *extra, *command)


def capture_cmd(*command: str, extra: tuple[str, ...] = (), checkout: str = "ck") -> tuple[str, ...]:
    return (
        "capture",
        "--checkout",
        checkout,
        "--out",
        "caps/out",
        "--world-size",
        "1",
        *extra,
        "--",
        *command,
    )


def write(relative: str, content: str | bytes, mode: int | None = None) -> Callable[[Workspace], None]:
    def setup(ws: Workspace) -> None:
        path = ws.cwd / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        data = content if isinstance(content, bytes) else ws.fill(content).encode()
        path.write_bytes(data)
        if mode is not None:
            path.chmod(mode)

    return setup


def steps(*setups: Callable[[Workspace], None]) -> Callable[[Workspace], None]:
    def setup(ws: Workspace) -> None:
        for step in setups:
            step(ws)

    return setup


def symlink(relative: str, target: str) -> Callable[[Workspace], None]:
    def setup(ws: Workspace) -> None:
        (ws.cwd / relative).symlink_to(ws.fill(target))

    return setup


def yaml_recipe(relative: str, section: str, checkout: str = "ck") -> Callable[[Workspace], None]:
    body = (
        f"capture:\n  checkout: {checkout}\n  command: bash -c 'echo $$ >> {{pids}}; exit 3'\n"
        f"  world_sizes: [1]\n{textwrap.indent(section, '  ')}"
    )
    return write(relative, body)


def copy_capture(ws: Workspace) -> None:
    shutil.copytree(ws.base_capture, ws.cwd / "cap")


def edit_json(relative: str, edit: Callable[[object], object]) -> Callable[[Workspace], None]:
    def setup(ws: Workspace) -> None:
        copy_capture(ws)
        path = ws.cwd / "cap" / relative
        document = json.loads(path.read_text())
        path.write_text(json.dumps(edit(document), indent=2))

    return setup


def edited(relative: str, edit: Callable[[dict], None]) -> Callable[[object], object]:
    def apply(document):
        edit(document)
        return document

    return edit_json(relative, apply)


def failed_log(ws: Workspace) -> Path:
    [log] = (ws.cache / "capture-logs").iterdir()
    return log


def no_secret(ws: Workspace, out: str, err: str) -> None:
    assert "hunter2-not-shown" not in out + err
    text = failed_log(ws).read_text()
    assert "hunter2-not-shown" not in text and "token=<redacted>" in text


def telemetry_off(ws: Workspace, out: str, err: str) -> None:
    assert "DNT=1 AX=1 HF=1 OFFLINE=1" in failed_log(ws).read_text()


def reported_instead_of_the_log_record(ws: Workspace, err: str) -> None:
    """The exception that ended the run is reported, not the logging framework's record printed after it."""
    assert "[ERROR] telemetry: posthog upload failed" in failed_log(ws).read_text()
    assert err.split("without constructing a trainer: ")[1].startswith(
        "TypeError: the real failure (world size"
    )


def bounded_log(ws: Workspace, out: str, err: str) -> None:
    log = failed_log(ws)
    assert 20_000_000 <= log.stat().st_size <= 21 * 1024 * 1024
    with open(log, "rb") as handle:
        handle.seek(10 * 1024 * 1024 - 100)
        middle = handle.read(400).decode()
    assert "bytes of output cut here" in middle


def plain_line(ws: Workspace, out: str, err: str) -> None:
    line = err.strip().splitlines()[-1]
    assert "\x1b" not in line and "\x07" not in line and all(char.isprintable() for char in line)


def not_written(relative: str) -> Callable[[Workspace, str, str], None]:
    def check(ws: Workspace, out: str, err: str) -> None:
        assert not (ws.cwd / relative).exists()

    return check


def global_batch(out: str, expected: int) -> None:
    """2 processes x 2 per device x 2 accumulation at world size 2, from the capture's own launch."""
    assert json.loads(out)["values"]["effective.global_batch"]["value"] == expected


SLEEPER = "setsid bash -c 'echo $$ >> {pids}; exec sleep 60' & sleep 60"
TRACEBACK_THEN_LOG = (
    "import atexit, sys\n"
    "atexit.register(lambda: print('[ERROR] telemetry: posthog upload failed', file=sys.stderr, flush=True))\n"
    "raise TypeError('the real failure')\n"
)
ESCAPES = "printf '\\033[2J\\033]0;owned\\007RuntimeError: boom\\033[31m red\\n'; exit 1"

DATA_LOSS = [
    Case("out-existing-folder-with-notes", capture(), "--force", setup=write("caps/out/notes.txt", "mine")),
    Case("out-existing-file", capture(), "--force", setup=write("caps/out", "a file")),
    Case(
        "out-contains-the-checkout",
        capture(checkout="p1/ck", out="p1"),
        "contains the checkout",
        setup=write("p1/ck/train.py", "print(1)\n"),
    ),
    Case(
        "out-contains-the-checkout-with-force",
        capture("--force", checkout="p1/ck", out="p1"),
        "even with --force",
        setup=write("p1/ck/train.py", "print(1)\n"),
    ),
    Case("out-dot", capture(out="."), "contains the current directory"),
    Case("out-dot-with-force", capture("--force", out="."), "contains the current directory"),
    Case("out-parent-of-cwd", capture("--force", out=".."), "contains the current directory"),
    Case("out-home-with-force", capture("--force", out="{home}"), "contains your home folder"),
    Case("out-root", capture("--force", out="/"), "contains"),
    Case("out-inside-checkout", capture(out="ck/caps"), "inside the checkout"),
    Case(
        "out-symlink", capture(out="caps/link"), "symbolic link", setup=symlink("caps/link", "{cwd}/outside")
    ),
    Case("out-parent-is-a-file", capture(out="notes.txt/out"), "notes.txt is a file, not a folder"),
    Case(
        "out-read-only-folder",
        capture(),
        "not writable",
        setup=steps(write("caps/out/.keep", ""), lambda ws: (ws.cwd / "caps" / "out").chmod(0o555)),
        as_root=False,
    ),
    Case(
        "out-with-data-inside-with-force",
        capture("--force", "--data", "my/rows=caps/out/rows", out="caps/out"),
        "contains --data my/rows",
        setup=write("caps/out/rows/train.jsonl", '{"a": 1}\n'),
    ),
    Case(
        "yaml-out-dot-in-cwd",
        ("show", "mine.yaml"),
        "contains",
        setup=yaml_recipe("mine.yaml", "out: .\n"),
    ),
    Case(
        "yaml-out-dot-beside-the-recipe",
        ("show", "rec/mine.yaml"),
        "contains the recipe file declaring the capture",
        setup=yaml_recipe("rec/mine.yaml", "out: .\n", checkout="../ck"),
    ),
    Case(
        "yaml-out-not-a-capture",
        ("show", "mine.yaml"),
        "set capture.out to a new folder",
        setup=steps(yaml_recipe("mine.yaml", "out: caps/keep\n")),
    ),
    Case(
        "link-outside-is-copied-not-written",
        capture(script="echo more >> data-link/rows.txt; echo x > dangling; exit 3"),
        "ended (exit 3) without constructing a trainer",
        setup=steps(
            symlink("ck/data-link", "{cwd}/outside"),
            symlink("ck/dangling", "{cwd}/caps/keep/created.txt"),
        ),
        check=not_written("caps/keep/created.txt"),
    ),
    Case(
        "link-to-a-folder-holding-the-checkout",
        capture(),
        "a folder that contains the link itself",
        setup=symlink("ck/up", "{cwd}"),
    ),
    Case(
        "link-to-large-data-outside",
        capture(),
        "leads outside the checkout to more than 1024 MB",
        setup=steps(
            lambda ws: subprocess.run(["truncate", "-s", "2G", str(ws.root / "big.dat")], check=True),
            symlink("ck/big.dat", "{root}/big.dat"),
        ),
    ),
    Case(
        "fifo-in-the-checkout-is-left-out",
        capture(),
        "ended (exit 3)",
        setup=lambda ws: os.mkfifo(ws.cwd / "ck" / "pipe"),
    ),
    Case(
        "tmpdir-inside-the-checkout",
        capture(),
        "ended (exit 3) without constructing a trainer",
        setup=write("ck/tmp/.keep", ""),
        env={"TMPDIR": "{cwd}/ck/tmp"},
    ),
]

PROCESSES = [
    Case(
        "timeout-ends-a-setsid-child",
        capture("--timeout", "1", script=SLEEPER),
        "capture timed out after 1 s, the recipe's processes were ended",
    ),
    Case(
        "error-line-is-the-last-traceback",
        capture_cmd("bash", "-c", 'echo $$ >> {pids}; exec python -c "$0"', TRACEBACK_THEN_LOG),
        "TypeError: the real failure",
        check=lambda ws, out, err: reported_instead_of_the_log_record(ws, err),
    ),
    Case(
        "escape-sequences-are-stripped",
        capture(script=ESCAPES),
        "RuntimeError: boom red",
        check=plain_line,
    ),
    Case(
        "telemetry-is-off",
        capture(
            script='echo "DNT=$DO_NOT_TRACK AX=$AXOLOTL_DO_NOT_TRACK HF=$HF_HUB_DISABLE_TELEMETRY '
            'OFFLINE=$HF_HUB_OFFLINE"; exit 3'
        ),
        "ended (exit 3)",
        check=telemetry_off,
    ),
    Case(
        "secret-env-value-never-kept",
        capture(
            "--env",
            "HF_TOKEN=hunter2-not-shown",
            script='echo "token=$HF_TOKEN"; echo "error: $HF_TOKEN"; exit 3',
        ),
        "error: <redacted>",
        check=no_secret,
    ),
    Case(
        "huge-output-keeps-a-bounded-head-and-tail",
        capture(script="yes 0123456789 | head -c 30000000; exit 3"),
        "ended (exit 3)",
        check=bounded_log,
    ),
    Case(
        "long-tmpdir-keeps-socket-paths-short",
        capture_cmd(
            "bash",
            "-c",
            'echo $$ >> {pids}; exec python -c "$0"',
            "from multiprocessing.connection import Listener\nListener(family='AF_UNIX').close()\n"
            "raise SystemExit(4)\n",
        ),
        "ended (exit 4) without constructing a trainer",
        setup=lambda ws: None,
        env={"TMPDIR": "LONG"},
    ),
    Case(
        "exit-code-without-trainer", capture(script="exit 5"), "ended (exit 5) without constructing a trainer"
    ),
]

COMMANDS = [
    Case("command-empty-word", capture_cmd(""), "starts with an empty word"),
    Case(
        "command-missing", capture_cmd("frobnicate-parity-test"), "command not found: frobnicate-parity-test"
    ),
    Case("command-missing-relative", capture_cmd("./missing.sh"), "command not found: ./missing.sh"),
    Case(
        "command-not-executable",
        capture_cmd("./train.sh"),
        "./train.sh is not executable",
        setup=write("ck/train.sh", "#!/bin/bash\nexit 3\n", mode=0o644),
    ),
    Case("command-none", ("capture", "--checkout", "ck", "--out", "caps/out"), "Missing argument 'command'"),
    Case("python-true", capture("--python", "/bin/true"), "not a Python interpreter"),
    Case("python-missing", capture("--python", "/nonexistent/python"), "not an executable interpreter"),
    Case("python-folder", capture("--python", "ck"), "a folder"),
    Case(
        "python-a-shell-script",
        capture("--python", "fake-python"),
        "not a Python interpreter",
        setup=write("fake-python", "#!/bin/sh\necho 3.11\n", mode=0o755),
    ),
    Case("checkout-missing", capture(checkout="missing"), "--checkout missing: does not exist"),
    Case("checkout-a-file", capture(checkout="notes.txt"), "--checkout notes.txt: is a file"),
]

OPTIONS = [
    Case("timeout-nan", capture("--timeout", "nan"), "--timeout must be a finite positive number"),
    Case("timeout-inf", capture("--timeout", "inf"), "--timeout must be a finite positive number"),
    Case("timeout-zero", capture("--timeout", "0"), "--timeout must be a finite positive number"),
    Case("timeout-negative", capture("--timeout", "-5"), "--timeout must be a finite positive number"),
    Case("timeout-text", capture("--timeout", "soon"), "--timeout"),
    Case("env-hub-offline", capture("--env", "HF_HUB_OFFLINE=0"), "--env HF_HUB_OFFLINE: parity sets this"),
    Case("env-home", capture("--env", "HOME=/tmp"), "--env HOME: parity sets this"),
    Case("env-pythonpath", capture("--env", "PYTHONPATH=/x"), "--env PYTHONPATH: parity sets this"),
    Case("env-path", capture("--env", "PATH=/usr/bin"), "--env PATH: parity sets this"),
    Case("env-tmpdir", capture("--env", "TMPDIR=/x"), "--env TMPDIR: parity sets this"),
    Case("env-telemetry", capture("--env", "DO_NOT_TRACK=0"), "--env DO_NOT_TRACK: parity sets this"),
    Case("env-parity-own", capture("--env", "PARITY_CAPTURE_CONFIG=x"), "--env PARITY_CAPTURE_CONFIG"),
    Case("env-bad-name", capture("--env", "A B=1"), "not an environment variable name"),
    Case("env-no-value", capture("--env", "NOVALUE"), "--env expects NAME=VALUE"),
    Case("world-size-huge", capture("--world-size", "100000"), "--world-size"),
    Case("world-size-10-to-23", capture("--world-size", "100000000000000000000000"), "--world-size"),
    Case("world-size-zero", capture("--world-size", "0"), "--world-size"),
    Case("world-size-twice", capture("--world-size", "1"), "lists a world size twice"),
    Case("stub-empty", capture("--stub", ""), "--stub '': not a module name"),
    Case("stub-dots-and-space", capture("--stub", "..a b"), "--stub '..a b': not a module name"),
    Case("stub-torch", capture("--stub", "torch"), "the capture itself runs on torch"),
    Case("stub-submodule-of-trl", capture("--stub", "trl.trainer"), "the capture itself runs on trl"),
    Case("out-tilde-expanded", capture(out="~/caps/out"), "ended (exit 3)", check=not_written("~")),
]

INPUTS = [
    Case(
        "data-missing-folder", capture("--data", "my/rows=missing"), "--data my/rows=missing: not a directory"
    ),
    Case("data-no-equals", capture("--data", "rows"), "--data expects NAME=VALUE"),
    Case(
        "data-broken-jsonl-line",
        capture("--data", "my/rows=bad"),
        "train.jsonl line 2 is not valid JSON",
        setup=write("bad/train.jsonl", '{"a": 1}\n{"a": \n'),
    ),
    Case(
        "data-not-utf8",
        capture("--data", "my/rows=bad"),
        "train.jsonl line 2 is not UTF-8 text",
        setup=write("bad/train.jsonl", b'{"a": 1}\n{"a": "\xff\xfe"}\n'),
    ),
    Case(
        "data-empty-train",
        capture("--data", "my/rows=bad"),
        "train.jsonl is empty",
        setup=write("bad/train.jsonl", ""),
    ),
    Case(
        "data-no-split-files",
        capture("--data", "my/rows=bad"),
        "no <split>.jsonl",
        setup=write("bad/notes.md", "rows elsewhere"),
    ),
    Case(
        "tokenizer-bad-config",
        capture("--tokenizer", "me/model=tok"),
        "--tokenizer me/model=tok: config.json is not valid JSON",
        setup=steps(write("tok/config.json", "{broken"), write("tok/tokenizer.json", "{}")),
    ),
    Case(
        "tokenizer-no-files",
        capture("--tokenizer", "me/model=tok"),
        "no tokenizer files",
        setup=write("tok/README.md", "nothing"),
    ),
]

YAML = [
    Case(
        "yaml-timeout-nan",
        ("show", "mine.yaml"),
        "'capture.timeout' must be a finite positive number",
        setup=yaml_recipe("mine.yaml", "timeout: .nan\n"),
    ),
    Case(
        "yaml-timeout-inf",
        ("show", "mine.yaml"),
        "'capture.timeout' must be a finite positive number",
        setup=yaml_recipe("mine.yaml", "timeout: .inf\n"),
    ),
    Case(
        "yaml-data-missing-names-the-key",
        ("show", "mine.yaml"),
        "capture.data my/rows=",
        setup=yaml_recipe("mine.yaml", "data: {my/rows: missing}\n"),
    ),
    Case(
        "yaml-world-size-huge",
        ("show", "mine.yaml"),
        "capture.world_sizes must be between 1 and 4096",
        setup=write(
            "mine.yaml", "capture:\n  checkout: ck\n  command: bash -c 'exit 3'\n  world_sizes: [100000]\n"
        ),
    ),
    Case(
        "yaml-env-protected",
        ("show", "mine.yaml"),
        "capture.env HF_HUB_OFFLINE",
        setup=yaml_recipe("mine.yaml", "env: {HF_HUB_OFFLINE: '0'}\n"),
    ),
    Case(
        "yaml-stub-torch",
        ("show", "mine.yaml"),
        "capture.stubs torch",
        setup=yaml_recipe("mine.yaml", "stubs: [torch]\n"),
    ),
    Case(
        "yaml-python-not-python",
        ("show", "mine.yaml"),
        "capture.python",
        setup=yaml_recipe("mine.yaml", "python: /bin/true\n"),
    ),
]

CAPTURED = [
    Case(
        "show-uncaptured-world-size",
        ("show", "capture:cap", "--world-size", "8"),
        "capture it again with --world-size 8",
        setup=copy_capture,
    ),
    Case(
        "diff-uncaptured-world-size",
        (
            "diff",
            "--a",
            "capture:cap",
            "--b",
            "revise",
            "--world-size",
            "4",
            "--out",
            "rep",
            "--samples",
            "8",
        ),
        "capture it again with --world-size 4",
        setup=copy_capture,
    ),
    Case(
        "run-uncaptured-world-size",
        (
            "run",
            "--a",
            "capture:cap",
            "--b",
            "revise",
            "--world-size",
            "8",
            "--out",
            "runs",
            "--max-steps",
            "1",
        ),
        "capture it again with --world-size 8",
        setup=copy_capture,
    ),
    Case(
        "lock-uncaptured-world-size",
        ("lock", "--a", "capture:cap", "--b", "revise", "--world-size", "8", "-o", "x.lock"),
        "capture it again with --world-size 8",
        setup=copy_capture,
    ),
    Case(
        "show-captured-world-size",
        ("show", "capture:cap", "--world-size", "2", "--format", "json"),
        "effective.global_batch",
        code=0,
        setup=copy_capture,
        check=lambda ws, out, err: global_batch(out, 8),
    ),
    Case(
        "show-world-size-huge",
        ("show", "capture:cap", "--world-size", "100000"),
        "--world-size",
        setup=copy_capture,
    ),
    Case(
        "diff-world-size-huge",
        ("diff", "--a", "capture:cap", "--b", "revise", "--world-size", "5000"),
        "--world-size",
        setup=copy_capture,
    ),
    Case(
        "run-world-size-huge",
        ("run", "--a", "revise", "--b", "llmhalluc", "--world-size", "5000"),
        "--world-size",
    ),
    Case(
        "edited-learning-rate",
        ("show", "capture:cap"),
        "edited since capture: training_args.json; re-capture or pass --trust-edits",
        setup=edited("training_args.json", lambda d: d["non_default"]["learning_rate"].update(value=0.5)),
    ),
    Case(
        "edited-per-device-batch-in-the-manifest",
        ("show", "capture:cap"),
        "edited since capture: manifest.json",
        setup=edited("manifest.json", lambda d: d["launch"][0].update(per_device_train_batch_size=64)),
    ),
    Case(
        "deleted-prepared-rows",
        ("show", "capture:cap"),
        "prepared/train.parquet (deleted)",
        setup=steps(copy_capture, lambda ws: (ws.cwd / "cap" / "prepared" / "train.parquet").unlink()),
    ),
    Case(
        "added-eval-rows",
        ("show", "capture:cap"),
        "prepared/extra.parquet (added)",
        setup=steps(
            copy_capture, lambda ws: (ws.cwd / "cap" / "prepared" / "extra.parquet").write_bytes(b"x")
        ),
    ),
    Case(
        "trusted-edit-is-read-with-a-note",
        ("--trust-edits", "show", "capture:cap", "--format", "json"),
        '"value": 0.5',
        code=0,
        setup=edited("training_args.json", lambda d: d["non_default"]["learning_rate"].update(value=0.5)),
    ),
    Case(
        "trusted-edit-by-variable",
        ("show", "capture:cap", "--format", "json"),
        '"value": 0.5',
        code=0,
        env={"PARITY_TRUST_EDITS": "1"},
        setup=edited("training_args.json", lambda d: d["non_default"]["learning_rate"].update(value=0.5)),
    ),
    Case(
        "manifest-a-list",
        ("show", "capture:cap"),
        "manifest.json must be a JSON object, not list",
        setup=edit_json("manifest.json", lambda d: [d]),
    ),
    Case(
        "manifest-not-json",
        ("show", "capture:cap"),
        "manifest.json is not valid JSON",
        setup=steps(copy_capture, lambda ws: (ws.cwd / "cap" / "manifest.json").write_text("{oops")),
    ),
    Case(
        "manifest-launch-rows-are-strings",
        ("--trust-edits", "show", "capture:cap"),
        "manifest.json launch[0] must be a JSON object, not str",
        setup=edited("manifest.json", lambda d: d.update(launch=["world size 1"])),
    ),
    Case(
        "training-args-fields-a-list",
        ("--trust-edits", "show", "capture:cap"),
        "training_args.json: 'fields' must be dict, not list",
        setup=edited("training_args.json", lambda d: d.update(fields=[1, 2])),
    ),
    Case(
        "model-parameter-count-text",
        ("--trust-edits", "show", "capture:cap"),
        "model.json: 'parameter_count' must be int, not str",
        setup=edited("model.json", lambda d: d.update(parameter_count="many")),
    ),
    Case(
        "newer-schema",
        ("show", "capture:cap"),
        "written by a newer parity (schema_version 99",
        setup=edited("manifest.json", lambda d: d.update(schema_version=99)),
    ),
    Case(
        "older-schema",
        ("show", "capture:cap"),
        "written by an older parity (schema_version 1",
        setup=edited("manifest.json", lambda d: d.update(schema_version=1)),
    ),
    Case(
        "missing-manifest",
        ("show", "capture:cap"),
        "missing manifest.json",
        setup=steps(copy_capture, lambda ws: (ws.cwd / "cap" / "manifest.json").unlink()),
    ),
    Case("capture-dir-absent", ("show", "capture:absent"), "capture absent: not a directory"),
    Case("capture-dir-a-file", ("show", "capture:notes.txt"), "capture notes.txt: not a directory"),
]

CASES = DATA_LOSS + PROCESSES + COMMANDS + OPTIONS + INPUTS + YAML + CAPTURED

FORK_SERVER = textwrap.dedent(
    """
    import json, os, runpy, signal, sys, time, traceback
    import parity.cli, parity.capture.pipeline, parity.diff, parity.lock, parity.materialize, trl, peft, datasets
    script = sys.argv[1]
    print("ready", flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:
            try:
                os.setsid()
                os.chdir(job["cwd"])
                os.environ.clear()
                os.environ.update(job["env"])
                import tempfile
                tempfile.tempdir = None
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                for fd, name in ((1, "stdout"), (2, "stderr")):
                    os.dup2(os.open(job[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
                sys.argv = [script, *job["argv"]]
                runpy.run_path(script, run_name="__main__")
                os._exit(0)
            except SystemExit as end:
                os._exit(end.code if isinstance(end.code, int) else 1)
            except BaseException:
                traceback.print_exc()
                sys.stderr.flush()
                os._exit(99)
        deadline = time.monotonic() + job["timeout"]
        code = None
        while code is None:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                code = os.waitstatus_to_exitcode(status)
            elif time.monotonic() > deadline:
                os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                code = "timeout"
            else:
                time.sleep(0.01)
        print(json.dumps({"code": code}), flush=True)
    """
)


class Runner:
    """Runs the installed console script in a child forked from an interpreter that imported parity and TRL."""

    def __init__(self) -> None:
        self.env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200", "TERM": "dumb"}
        self.server = subprocess.Popen(
            [sys.executable, "-c", FORK_SERVER, str(SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=self.env,
        )
        assert self.server.stdout.readline().strip() == "ready"

    def run(self, argv: list[str], cwd: Path, env: dict[str, str], output: Path) -> tuple[object, str, str]:
        out, err = output / "stdout", output / "stderr"
        job = {
            "argv": argv,
            "cwd": str(cwd),
            "env": {**self.env, **env},
            "stdout": str(out),
            "stderr": str(err),
            "timeout": TIMEOUT,
        }
        self.server.stdin.write(json.dumps(job) + "\n")
        self.server.stdin.flush()
        code = json.loads(self.server.stdout.readline())["code"]
        read = lambda p: p.read_text(encoding="utf-8", errors="replace") if p.exists() else ""  # noqa: E731
        return code, read(out), read(err)

    def close(self) -> None:
        self.server.stdin.close()
        self.server.wait(timeout=30)


@pytest.fixture(scope="module")
def runner():
    started = Runner()
    yield started
    started.close()


def tree_state(folder: Path) -> dict[str, str]:
    """Every entry under `folder` (links not followed): its kind and content digest, or link target."""
    state = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_symlink():
            state[relative] = "link:" + os.readlink(path)
        elif path.is_dir():
            state[relative] = f"dir:{oct(path.stat().st_mode & 0o777)}"
        elif path.is_file():
            state[relative] = "file:" + hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            state[relative] = "other"
    return state


def changed_paths(before: dict[str, str], after: dict[str, str], allowed: tuple[str, ...]) -> list[str]:
    def free(name: str) -> bool:
        return any(name == prefix or name.startswith(prefix + "/") for prefix in allowed)

    return sorted(
        name for name in set(before) | set(after) if before.get(name) != after.get(name) and not free(name)
    )


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)


def make_trl_checkout(folder: Path) -> None:
    """TRL's `trl sft --config sft.yaml` with a chat template file (conversational rows)."""
    shutil.copytree(FIXTURES / "trl_sft_config", folder)
    with open(folder / "sft.yaml", "a") as config:
        config.write("chat_template_path: template.jinja\n")
    (folder / "template.jinja").write_text(CHAT_TEMPLATE)


def make_rows(folder: Path) -> None:
    """8 conversational prompt/completion rows (the fixture's 4 GSM8K rows twice)."""
    folder.mkdir(parents=True)
    rows = [
        json.loads(line) for line in (FIXTURES / "data" / "gsm8k" / "train.jsonl").read_text().splitlines()
    ]
    (folder / "train.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "prompt": [{"role": "user", "content": row["question"]}],
                    "completion": [{"role": "assistant", "content": row["answer"]}],
                }
            )
            + "\n"
            for row in rows + rows
        )
    )


_short_tmpdirs: list[Path] = []


@pytest.fixture(autouse=True)
def _remove_short_tmpdirs():
    """The private TMPDIRs under /tmp are removed after each test, passed or failed."""
    yield
    while _short_tmpdirs:
        shutil.rmtree(_short_tmpdirs.pop(), ignore_errors=True)


def workspace(root: Path, base_capture: Path) -> Workspace:
    """A fresh case folder (see the module docstring)."""
    cwd = root / "cwd"
    (cwd / "ck").mkdir(parents=True)
    (cwd / "ck" / "train.py").write_text("print('training')\n")
    make_trl_checkout(cwd / "trl_ck")
    shutil.copytree(FIXTURES / "data" / "gsm8k", cwd / "data")
    make_rows(cwd / "pc")
    (cwd / "caps" / "keep").mkdir(parents=True)
    (cwd / "caps" / "keep" / "notes.txt").write_text("keep me\n")
    (cwd / "outside").mkdir()
    (cwd / "outside" / "rows.txt").write_text("original rows\n")
    (cwd / "notes.txt").write_text("notes\n")
    home = root / "home"
    home.mkdir()
    tmpdir = Path(tempfile.mkdtemp(prefix="pcs-", dir="/tmp"))  # short: the recipe's sockets fit under it
    _short_tmpdirs.append(tmpdir)
    return Workspace(root, cwd, root / "pids", home, root / "cache", tmpdir, base_capture)


@pytest.fixture(scope="module")
def base_capture(tmp_path_factory, runner) -> Path:
    """One real capture of TRL's `trl sft --config` on 8 local rows at world sizes 1 and 2."""
    root = tmp_path_factory.mktemp("base")
    make_trl_checkout(root / "trl_ck")
    make_rows(root / "pc")
    argv = [
        "capture", "--checkout", "trl_ck", "--out", "cap", "--world-size", "1", "--world-size", "2",
        "--data", "tiny/gsm8k-prompt-completion=pc", "--", "trl", "sft", "--config", "sft.yaml",
    ]  # fmt: skip
    env = {"PARITY_CACHE_DIR": str(root / "cache")}
    code, out, err = runner.run(argv, root, env, root)
    assert code == 0, err[-3000:]
    assert out.startswith("captured cap in ")
    return root / "cap"


def run_case(case: Case, runner: Runner, tmp_path: Path, base_capture: Path) -> tuple[Workspace, str, str]:
    ws = workspace(tmp_path, base_capture)
    try:
        if case.setup:
            case.setup(ws)
        env = {
            "HOME": str(ws.home),
            "PARITY_CACHE_DIR": str(ws.cache),
            "TMPDIR": str(ws.tmpdir),
            **{key: ws.fill(value) for key, value in case.env.items()},
        }
        if env["TMPDIR"] == "LONG":
            env["TMPDIR"] = str(ws.tmpdir / ("long-folder-name-" * 5))
            Path(env["TMPDIR"]).mkdir()
        before = tree_state(ws.cwd)
        code, out, err = runner.run([ws.fill(arg) for arg in case.argv], ws.cwd, env, tmp_path)
        assert "Traceback" not in out + err, err[-3000:]
        assert code == case.code, f"exit {code}; stderr: {err[-2000:]}"
        errors = [line for line in err.splitlines() if not line.startswith("parity: note:")]
        if case.code == 0:
            assert errors == [], errors
            assert case.says in out, out[-2000:]
        else:
            assert len(errors) == 1, f"expected one line on stderr, got {len(errors)}: {errors[:5]}"
            assert errors[0].startswith("parity: "), errors[0]
            assert case.says in errors[0], errors[0]
        assert changed_paths(before, tree_state(ws.cwd), case.changes) == []
        assert [path.name for path in ws.tmpdir.rglob("*") if "long-folder-name" not in str(path)] == []
        assert [pid for pid in ws.recorded_pids() if alive(pid)] == []
        if case.check:
            case.check(ws, out, err)
        return ws, out, err
    finally:
        os.chmod(ws.cwd, 0o755)
        for path in ws.cwd.rglob("*"):
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)


def test_the_table_holds_every_case_once():
    assert len(CASES) >= 60
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_capture_input_is_one_line_and_changes_nothing(case: Case, runner, tmp_path, base_capture):
    if not case.as_root and os.geteuid() == 0:
        pytest.skip("file permissions do not bind root")
    run_case(case, runner, tmp_path, base_capture)


SIGNALLED_RECIPE = """#!/bin/bash
echo $$ >> {pids}
setsid bash -c 'echo $$ >> {pids}; exec sleep 120' &
nohup sleep 121 > /dev/null 2>&1 &
echo $! >> {pids}
disown
sleep 120
"""
"""A recipe that starts a `setsid` child and a disowned `nohup` child, then sleeps: 3 process ids per run."""


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["INT", "TERM"])
def test_a_signal_ends_every_process_of_the_recipe_within_10_s(sig, code, tmp_path):
    ws = workspace(tmp_path, Path())
    write("ck/run.sh", SIGNALLED_RECIPE, mode=0o755)(ws)
    before = tree_state(ws.cwd)
    env = {
        **os.environ,
        "HOME": str(ws.home),
        "PARITY_CACHE_DIR": str(ws.cache),
        "TMPDIR": str(ws.tmpdir),
        "PARITY_CAPTURE_JOBS": "2",
    }
    argv = ["capture", "--checkout", "ck", "--out", "caps/out", "--world-size", "1", "--world-size", "2"]
    process = subprocess.Popen(
        [str(SCRIPT), *argv, "--", "./run.sh"],
        cwd=ws.cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while len(ws.recorded_pids()) < 6 and time.monotonic() < deadline:
            time.sleep(0.1)
        pids = ws.recorded_pids()
        assert len(pids) == 6 and all(alive(pid) for pid in pids)
        sent = time.monotonic()
        process.send_signal(sig)
        out, err = process.communicate(timeout=15)
        assert time.monotonic() - sent < 10
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == code
    assert err.splitlines() == ["parity: interrupted"]
    assert [pid for pid in pids if alive(pid)] == []
    assert list(ws.tmpdir.iterdir()) == []
    assert changed_paths(before, tree_state(ws.cwd), ()) == []  # no partial capture, nothing beside it


def test_a_capture_with_force_replaces_only_out_and_leaves_no_process(runner, tmp_path, base_capture):
    """`--out '~/caps/t'` (quoted) is HOME's; --force replaces the folder that was not a capture; the recipe's
    background `setsid` child is ended once the trainer is captured."""
    ws = workspace(tmp_path, base_capture)
    target = ws.home / "caps" / "t"
    (target / "sub").mkdir(parents=True)
    (target / "sub" / "notes.txt").write_text("replace me")
    (ws.home / "caps" / "keep.txt").write_text("keep me")
    before = tree_state(ws.cwd)
    command = "setsid sleep 60 & echo $! >> {pids}; exec trl sft --config sft.yaml"
    argv = [
        "capture", "--checkout", "trl_ck", "--out", "~/caps/t", "--world-size", "1", "--force",
        "--data", "tiny/gsm8k-prompt-completion=pc", "--", "bash", "-c", ws.fill(command),
    ]  # fmt: skip
    env = {"HOME": str(ws.home), "PARITY_CACHE_DIR": str(ws.cache), "TMPDIR": str(ws.tmpdir)}
    code, out, err = runner.run(argv, ws.cwd, env, tmp_path)
    assert code == 0, err[-3000:]
    assert out.startswith(f"captured {target} in ")
    assert (target / "manifest.json").is_file() and not (target / "sub").exists()
    assert (ws.home / "caps" / "keep.txt").read_text() == "keep me"
    assert sorted(path.name for path in (ws.home / "caps").iterdir()) == ["keep.txt", "t"]
    assert changed_paths(before, tree_state(ws.cwd), ()) == []  # no ./~ folder, the checkout untouched
    [pid] = ws.recorded_pids()
    assert not alive(pid)
    assert list(ws.tmpdir.iterdir()) == []
    manifest = json.loads((target / "manifest.json").read_text())
    assert "DO_NOT_TRACK=1" in manifest["redirects"]["telemetry_disabled"]
    assert "AXOLOTL_DO_NOT_TRACK=1" in manifest["redirects"]["telemetry_disabled"]


def _base_options(base_capture: Path, **changes):
    from parity.capture.options import CaptureOptions

    root = base_capture.parent
    options = {
        "checkout": root / "trl_ck",
        "out": base_capture,
        "command": ("trl", "sft", "--config", "sft.yaml"),
        "data": {"tiny/gsm8k-prompt-completion": root / "pc"},
        "world_sizes": (1, 2),
    }
    return CaptureOptions(**{**options, **changes})


def test_an_edited_or_deleted_capture_file_is_never_cached(runner, base_capture, tmp_path):
    from parity.capture.pipeline import _cached

    key = json.loads((base_capture / "manifest.json").read_text())["cache_key"]
    copy = tmp_path / "cap"
    shutil.copytree(base_capture, copy)
    assert _cached(copy, key) is not None
    args = copy / "training_args.json"
    original = args.read_text()
    args.write_text(original.replace('"learning_rate": 5e-05', '"learning_rate": 0.5'))
    assert args.read_text() != original and _cached(copy, key) is None
    args.write_text(original)
    assert _cached(copy, key) is not None
    (copy / "collator.json").unlink()
    assert _cached(copy, key) is None
    # through the command: the unedited copy is cached, the edited one captured again (and whole afterwards)
    root = base_capture.parent
    shutil.rmtree(copy)
    shutil.copytree(base_capture, copy)
    argv = [
        "capture", "--checkout", "trl_ck", "--out", str(copy), "--world-size", "1", "--world-size", "2",
        "--data", "tiny/gsm8k-prompt-completion=pc", "--", "trl", "sft", "--config", "sft.yaml",
    ]  # fmt: skip
    env = {"PARITY_CACHE_DIR": str(tmp_path / "cache")}
    code, out, err = runner.run(argv, root, env, tmp_path)
    assert code == 0 and out.startswith(f"cached {copy} "), err[-2000:]
    args.write_text(original.replace('"learning_rate": 5e-05', '"learning_rate": 0.5'))
    code, out, err = runner.run(argv, root, env, tmp_path)
    assert code == 0 and out.startswith(f"captured {copy} "), err[-2000:]
    assert _cached(copy, key) is not None and json.loads(args.read_text())["fields"]["learning_rate"] == 5e-05


def test_data_behind_a_symlink_is_part_of_the_cache_key(base_capture, tmp_path):
    from parity.capture.cache import cache_key

    outside = tmp_path / "outside"
    outside.mkdir()
    rows = outside / "train.jsonl"
    rows.write_text((base_capture.parent / "pc" / "train.jsonl").read_text())
    checkout = tmp_path / "ck"
    shutil.copytree(base_capture.parent / "trl_ck", checkout)
    (checkout / "data").symlink_to(outside)
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").symlink_to(rows)
    options = _base_options(base_capture, checkout=checkout, data={"tiny/gsm8k-prompt-completion": data})
    first = cache_key(options)
    assert cache_key(options) == first
    rows.write_text("".join(rows.read_text().splitlines(keepends=True)[:2]))  # fewer rows, same paths
    assert cache_key(options) != first


def test_a_replaced_interpreter_changes_the_cache_key(base_capture, tmp_path):
    """The same --python path with another environment behind it (other installed distributions)."""
    from parity.capture.cache import cache_key

    for name in ("env-a", "env-b"):
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / name)], check=True)
    site = next((tmp_path / "env-b" / "lib").glob("python*/site-packages"))
    (site / "extra_pkg-1.0.dist-info").mkdir()
    (site / "extra_pkg-1.0.dist-info" / "METADATA").write_text("Name: extra-pkg\nVersion: 1.0\n")
    (tmp_path / "env").symlink_to(tmp_path / "env-a")
    options = _base_options(base_capture, python=str(tmp_path / "env" / "bin" / "python"))
    first = cache_key(options)
    (tmp_path / "env").unlink()
    (tmp_path / "env").symlink_to(tmp_path / "env-b")
    assert cache_key(options) != first


def test_a_lock_names_its_capture_relative_to_itself_and_checks_from_anywhere(runner, base_capture, tmp_path):
    ws = workspace(tmp_path, base_capture)
    copy_capture(ws)
    env = {"HOME": str(ws.home), "PARITY_CACHE_DIR": str(ws.cache), "TMPDIR": str(ws.tmpdir)}
    argv = ["lock", "--a", "capture:cap", "--b", "capture:cap", "--examples", "2"]
    code, out, err = runner.run([*argv, "-o", "locks/pair.lock"], ws.cwd, env, tmp_path)
    assert code == 0, err[-2000:]
    lock = ws.cwd / "locks" / "pair.lock"
    pair = __import__("yaml").safe_load(lock.read_text())["pair"]
    assert (pair["a"], pair["b"]) == ("capture:../cap", "capture:../cap")
    code, out, err = runner.run(["check", "--lock", str(lock)], ws.root, env, tmp_path)
    assert code == 0 and "matches" in out, err[-2000:]
    args = ws.cwd / "cap" / "training_args.json"
    args.write_text(args.read_text().replace('"learning_rate": 5e-05', '"learning_rate": 0.5'))
    code, out, err = runner.run(["check", "--lock", str(lock)], ws.root, env, tmp_path)
    assert code == 2 and err.strip().endswith("PARITY_TRUST_EDITS=1)")
    assert "edited since capture: training_args.json" in err


def test_a_bounded_log_keeps_head_and_tail_and_says_what_was_cut(tmp_path):
    from parity.capture.logs import BoundedLog

    log = BoundedLog(tmp_path / "log.txt", head=10, tail=8)
    for chunk in (b"0123456789ab", b"cdefgh", b"ijklmnopqrstuvwxyz"):
        log.write(chunk)
    log.close(secrets=["uvw"])
    assert (tmp_path / "log.txt").read_bytes() == (
        b"0123456789\n[parity capture: 18 bytes of output cut here; the log keeps the first 10 and the last 8 "
        b"bytes]\nst<redacted>xyz"
    )


@pytest.mark.parametrize(
    ("log", "line"),
    [
        (
            'Traceback (most recent call last):\n  File "x.py", line 1\n    f()\nTypeError: bad\n'
            "[ERROR] posthog: upload failed\n",
            "TypeError: bad",
        ),
        (
            '[rank0]: Traceback (most recent call last):\n[rank0]:   File "x.py", line 1\n'
            "[rank0]: ValueError: wrong rank\nE1201 torch.distributed.elastic: failed\n",
            "ValueError: wrong rank",
        ),
        (
            "loading\n2024 - ERROR - tracker offline\nbash: frob: command not found\n",
            "bash: frob: command not found",
        ),
        ("all good\n", ""),
    ],
    ids=["traceback-then-log-record", "launcher-prefix", "no-traceback", "nothing"],
)
def test_the_error_line_is_the_exception_that_ended_the_run(tmp_path, log, line):
    from parity.capture.logs import last_exception

    (tmp_path / "log.txt").write_text(log)
    assert last_exception(tmp_path / "log.txt") == line


def test_printable_removes_escape_sequences_and_control_characters():
    from parity.capture.logs import printable

    assert printable("\x1b[2J\x1b]0;title\x07Error:\tboom\x1b[31m\u202e red\r\n") == "Error: boom red"
    assert printable("x" * 50, limit=10) == "xxxxxxxxx…"


def test_a_socket_path_over_the_af_unix_limit_is_named_as_the_cause(tmp_path):
    from parity.capture.pipeline import _socket_cause

    log = tmp_path / "log.txt"
    log.write_text("Traceback (most recent call last):\nEOFError\n")
    long_tmp = Path("/tmp/" + "x" * 80)
    assert "exceeds the 107-byte AF_UNIX limit" in _socket_cause(log, long_tmp, "EOFError")
    assert "set TMPDIR to a shorter folder" in _socket_cause(log, long_tmp, "EOFError")
    assert _socket_cause(log, Path("/tmp/short"), "EOFError") is None
    log.write_text("OSError: AF_UNIX path too long\n")
    assert _socket_cause(log, Path("/tmp/short"), "EOFError") is not None


def test_a_run_tree_holds_setsid_and_disowned_children(tmp_path):
    from parity.capture.processes import RUN_MARKER, ProcessTree

    pids = tmp_path / "pids"
    script = f"setsid sleep 60 & echo $! >> {pids}; (sleep 61 & echo $! >> {pids}); sleep 62"
    token = os.urandom(8).hex()
    process = subprocess.Popen(
        ["bash", "-c", script], env={**os.environ, RUN_MARKER: token}, start_new_session=True
    )
    tree = ProcessTree(process.pid, token)
    try:
        deadline = time.monotonic() + 10
        while len(pids.read_text().split() if pids.exists() else []) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        members = tree.alive()
        children = [int(pid) for pid in pids.read_text().split()]  # a new session's, and an orphan's
        assert len(children) == 2 and {process.pid, *children} <= members
        tree.end(grace=2.0)
        process.wait(timeout=5)
        assert [pid for pid in members if alive(pid)] == []
    finally:
        tree.close()
        if process.poll() is None:
            process.kill()
