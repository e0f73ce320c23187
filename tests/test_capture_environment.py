"""Pinned capture environments: reading declared dependencies, skipping, torch substitution, the cache key,
one-line build failures (a fake uv), and one real uv build of the ReVISE checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from parity.capture import environment as env_module
from parity.capture.environment import (
    CPU_TORCH_INDEX,
    TorchSource,
    build_environment,
    declared_requirements,
    environment_key,
    find_torch_wheel,
    normalize_requirement,
    plan_install,
    resolution_date,
    resolve_python,
)
from parity.errors import ParityError

UPSTREAM = Path(__file__).resolve().parent.parent.parent / "shared" / "upstream"
REVISE = UPSTREAM / "revise-35ed7cf"
needs_revise_checkout = pytest.mark.skipif(
    not (REVISE / "pyproject.toml").is_file(), reason=f"upstream ReVISE checkout not found at {REVISE}"
)
PY_TAG = f"cp{sys.version_info.major}{sys.version_info.minor}"
CPU_WHEEL_NAME = f"torch-2.13.0+cpu-{PY_TAG}-{PY_TAG}-manylinux_2_28_x86_64.whl"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A repository declaring dependencies in all three places, with a local sub-project."""
    root = tmp_path / "recipe"
    write(
        root / "pyproject.toml",
        """
        [project]
        name = "recipe"
        dependencies = ["torch==2.6.0", "Transformers==4.54.1", "trl>=0.9,<1", "flash_attn>=2.5", "ray==2.48.0"]
        [project.optional-dependencies]
        eval = ["Rouge_Score>=0.1"]
        dev = ["pytest"]
        """,
    )
    write(
        root / "requirements.txt",
        """
        # training
        datasets==4.0.0  # pinned
        peft>=0.12 \\
            ; python_version >= "3.9"
        -r requirements-extra.txt
        --extra-index-url https://example.invalid/simple
        nvidia-cublas-cu12==12.4.5.8
        """,
    )
    write(root / "requirements-extra.txt", "torchvision==0.21.0\n-r requirements.txt\n")
    write(
        root / "environment.yaml",
        """
        name: recipe
        dependencies:
          - python=3.12.11
          - pip
          - cython
          - pip:
            - -e .
            - -e ./evaluation[metrics]
        """,
    )
    write(
        root / "evaluation" / "pyproject.toml",
        """
        [project]
        name = "evaluation"
        dependencies = ["sacrebleu>=1.5", "accelerate==1.9.0"]
        [project.optional-dependencies]
        metrics = ["evaluate>=0.4"]
        """,
    )
    return root


# --- reading declared dependencies ---------------------------------------------------------------------


def test_normalize_requirement_canonicalizes_name_extras_specifiers_and_marker():
    assert normalize_requirement("Flash_Attn >= 2.5") == "flash-attn>=2.5"
    assert normalize_requirement("Transformers[Torch,Accelerate] <5, >=4.45") == (
        "transformers[accelerate,torch]<5,>=4.45"
    )
    assert (
        normalize_requirement("peft>=0.12; python_version >= '3.9'") == 'peft>=0.12; python_version >= "3.9"'
    )


def test_declared_requirements_reads_pyproject_requirements_files_and_environment_pip_section(checkout):
    declared = declared_requirements(checkout)
    assert declared.requirements == [
        "accelerate==1.9.0",
        "datasets==4.0.0",
        "evaluate>=0.4",
        "flash-attn>=2.5",
        "nvidia-cublas-cu12==12.4.5.8",
        'peft>=0.12; python_version >= "3.9"',
        "ray==2.48.0",
        "sacrebleu>=1.5",
        "torch==2.6.0",
        "torchvision==0.21.0",
        "transformers==4.54.1",
        "trl<1,>=0.9",
    ]
    running = ".".join(map(str, sys.version_info[:3]))
    assert declared.notes == [
        "pyproject.toml: optional groups of recipe not taken: dev, eval",
        "requirements.txt: option '--extra-index-url https://example.invalid/simple' ignored",
        f"environment.yaml asks python=3.12.11; built with the running Python {running}",
        "environment.yaml: '-e .' is the checkout itself: its dependencies come from pyproject.toml; "
        "its code runs from the checkout copy",
        "environment.yaml: '-e ./evaluation[metrics]' is a local project: its declared dependencies are "
        "installed, its code is not",
        "environment.yaml: conda-only entries skipped: pip, cython",
    ]


def test_optional_groups_are_taken_only_when_asked(checkout):
    declared = declared_requirements(checkout, optional_groups=["eval", "gpu"])
    assert "rouge-score>=0.1" in declared.requirements
    assert "pytest" not in declared.requirements
    assert "pyproject.toml: optional group(s) gpu not declared by recipe" in declared.notes
    assert "pyproject.toml: optional groups of recipe not taken: dev" in declared.notes


def test_a_checkout_that_declares_nothing_is_one_line_error(tmp_path):
    write(tmp_path / "README.md", "no dependencies here\n")
    with pytest.raises(ParityError, match=r"declares no dependencies .*use --python current"):
        declared_requirements(tmp_path)


def test_an_unreadable_requirement_names_its_file(tmp_path):
    write(tmp_path / "requirements.txt", "trl>=>0.9\n")
    with pytest.raises(ParityError, match=r"^requirements.txt: cannot read requirement 'trl>=>0.9'"):
        declared_requirements(tmp_path)


# --- skipping and torch substitution -------------------------------------------------------------------


def test_plan_skips_gpu_only_and_stubbed_packages_and_substitutes_the_cpu_torch_wheel(checkout, tmp_path):
    wheel = tmp_path / "wheels" / CPU_WHEEL_NAME
    write(wheel, "")
    plan = plan_install(declared_requirements(checkout).requirements, TorchSource(wheel=wheel), skip=["Ray"])
    assert plan.install == [
        "accelerate==1.9.0",
        "datasets==4.0.0",
        "evaluate>=0.4",
        'peft>=0.12; python_version >= "3.9"',
        "sacrebleu>=1.5",
        "transformers==4.54.1",
        "trl<1,>=0.9",
    ]
    assert plan.torch_requirement == str(wheel)
    assert plan.dropped == [
        "apex",
        "bitsandbytes",
        "deepspeed",
        "flash-attn",
        "flashinfer-python",
        "nvidia-cublas-cu12",
        "ray",
        "torchvision",
        "triton",
        "vllm",
        "xformers",
    ]
    assert plan.notes == [
        "flash-attn skipped: GPU-only",
        "nvidia-cublas-cu12 skipped: GPU-only",
        "ray skipped: listed in skip (the capture stubs it)",
        "torchvision==0.21.0 skipped: built for the torch it pins, not for the CPU torch installed",
        f"torch==2.6.0 pinned upstream; installed the CPU wheel torch 2.13.0+cpu from {wheel.parent} instead",
    ]


def test_without_a_wheel_the_cpu_index_keeps_the_pinned_torch_version_minus_its_cuda_tag():
    plan = plan_install(["torch==2.6.0+cu124", "trl==0.17.0"], TorchSource(index_url=CPU_TORCH_INDEX))
    assert plan.torch_requirement == "torch==2.6.0"
    assert plan.install == ["trl==0.17.0"]
    assert plan.notes == [f"torch==2.6.0+cu124; installed torch==2.6.0 from {CPU_TORCH_INDEX}"]


def test_an_undeclared_torch_still_gets_the_cpu_wheel(tmp_path):
    wheel = write(tmp_path / CPU_WHEEL_NAME, "")
    plan = plan_install(["trl>=0.9"], TorchSource(wheel=wheel))
    assert plan.notes == [
        f"torch not declared; installed the CPU wheel torch 2.13.0+cpu from {tmp_path} instead"
    ]


def test_torch_wheel_explicit_then_environment_then_pip_find_links_then_cpu_index(tmp_path):
    links = tmp_path / "links"
    for name in (
        f"torch-2.12.0+cpu-{PY_TAG}-{PY_TAG}-manylinux_2_28_x86_64.whl",
        CPU_WHEEL_NAME,
        f"torch-2.14.0-{PY_TAG}-{PY_TAG}-manylinux_2_28_x86_64.whl",
        "torch-2.15.0+cpu-cp39-cp39-manylinux_2_28_x86_64.whl",
    ):
        write(links / name, "")
    pip_conf = write(tmp_path / "pip.conf", f"[global]\nfind-links = {links}\n")
    explicit = write(tmp_path / "mine" / CPU_WHEEL_NAME, "")

    assert find_torch_wheel(explicit, environ={}, pip_config_files=[]).wheel == explicit
    from_env = find_torch_wheel(environ={"PARITY_TORCH_WHEEL": str(explicit)}, pip_config_files=[])
    assert from_env.wheel == explicit
    # a CPU build of this Python's tag wins over a newer unlabelled build and another Python's wheel
    assert find_torch_wheel(environ={}, pip_config_files=[pip_conf]).wheel == links / CPU_WHEEL_NAME
    assert (
        find_torch_wheel(environ={"PIP_FIND_LINKS": str(links)}, pip_config_files=[]).version == "2.13.0+cpu"
    )
    assert find_torch_wheel(environ={}, pip_config_files=[]) == TorchSource(index_url=CPU_TORCH_INDEX)
    with pytest.raises(ParityError, match="torch wheel not found or not a torch wheel: /nowhere/torch.whl"):
        find_torch_wheel("/nowhere/torch.whl", environ={}, pip_config_files=[])


# --- the commit date -----------------------------------------------------------------------------------


def test_resolution_date_from_argument_git_known_export_or_newest(tmp_path):
    assert resolution_date(tmp_path, "2025-08-11") == (
        "2025-08-11",
        "ranges resolved as of 2025-08-11 (the commit date given)",
    )
    assert resolution_date(tmp_path, "2025-08-11T09:30:00+09:00")[0] == "2025-08-11T00:30:00Z"
    with pytest.raises(
        ParityError, match="commit date must be YYYY-MM-DD or an ISO timestamp, got 'last week'"
    ):
        resolution_date(tmp_path, "last week")

    repo = tmp_path / "repo"
    write(repo / "requirements.txt", "trl\n")
    stamp = {
        "GIT_COMMITTER_DATE": "2025-03-04T05:06:07+02:00",
        "GIT_AUTHOR_DATE": "2025-03-04T05:06:07+02:00",
    }
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True, env={**os.environ, **stamp})
    date, note = resolution_date(repo)
    assert date == "2025-03-04T03:06:07Z"
    assert note.startswith("ranges resolved as of 2025-03-04T03:06:07Z (the checkout's commit date, ")
    # a folder inside that repository is not itself a checkout with its own commit
    write(repo / "sub" / "requirements.txt", "trl\n")
    assert resolution_date(repo / "sub")[0] is None

    export = tmp_path / "revise-35ed7cf"
    write(export / "pyproject.toml", '[project]\nname = "revise"\n')
    assert resolution_date(export) == (
        "2025-08-11",
        "ranges resolved as of 2025-08-11 (the commit date of github.com/seunghyukoh/ReVISE 35ed7cf, a known export)",
    )
    assert resolution_date(tmp_path) == (
        None,
        "ranges resolved to the newest versions: no commit date (not a git checkout, none given)",
    )


# --- the cache key -------------------------------------------------------------------------------------


def test_cache_key_is_stable_and_changes_with_what_decides_the_environment(tmp_path):
    wheel = write(tmp_path / CPU_WHEEL_NAME, "")
    torch = TorchSource(wheel=wheel)
    key = environment_key(plan_install(["trl==0.17.0", "datasets==4.0.0"], torch), "2025-08-11")
    assert len(key) == 16 and int(key, 16) >= 0
    assert environment_key(plan_install(["datasets==4.0.0", "trl==0.17.0"], torch), "2025-08-11") == key
    # a GPU-only package or a torch pin changes nothing that is installed
    same = plan_install(["trl==0.17.0", "datasets==4.0.0", "vllm==0.8.5", "torch==2.6.0"], torch)
    assert environment_key(same, "2025-08-11") == key
    assert environment_key(plan_install(["trl==0.17.0", "datasets==4.0.0"], torch), "2025-08-12") != key
    assert environment_key(plan_install(["trl==0.17.0", "datasets==4.0.1"], torch), "2025-08-11") != key
    assert (
        environment_key(plan_install(["trl==0.17.0", "datasets==4.0.0"], torch, ["ray"]), "2025-08-11") != key
    )
    other = TorchSource(index_url=CPU_TORCH_INDEX)
    assert environment_key(plan_install(["trl==0.17.0", "datasets==4.0.0"], other), "2025-08-11") != key


# --- building with a fake uv: the cache, the atomic build, the one-line failure -------------------------

FAKE_UV = """\
#!{python}
import json, os, sys
from pathlib import Path
calls = Path({calls!r})
with calls.open("a") as handle:
    handle.write(json.dumps(sys.argv[1:]) + "\\n")
args = sys.argv[1:]
tmpdir = Path(os.environ.get("TMPDIR", "/tmp"))
(tmpdir / "uv-setuptools-fake.lock").touch()  # as uv's sdist builds leave in TMPDIR
Path(str(calls) + ".tmpdir").write_text(str(tmpdir))
if args[0] == "venv":
    venv = Path(args[args.index("--python") + 2])
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    (venv / "bin" / "python").write_text("#!/bin/sh\\nexec {python} \\"$@\\"\\n")
    (venv / "bin" / "python").chmod(0o755)
elif {fail!r} in " ".join(args):
    print("error: No solution found when resolving dependencies", file=sys.stderr)
    print("  cause: Because no-such-package was not found in the package registry and you require "
          "no-such-package, we can conclude that your requirements are unsatisfiable.", file=sys.stderr)
    sys.exit(1)
"""


def fake_uv(tmp_path: Path, monkeypatch, fail: str = "never-matches") -> Path:
    """A uv stand-in whose venv runs this interpreter; it logs its calls and fails when `fail` is asked."""
    calls = tmp_path / "uv-calls.jsonl"
    script = write(tmp_path / "fake-uv", FAKE_UV.format(python=sys.executable, calls=str(calls), fail=fail))
    script.chmod(0o755)
    monkeypatch.setattr(env_module, "uv_command", lambda: [str(script)])
    return calls


def read_calls(calls: Path) -> list[list[str]]:
    return [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []


def test_build_installs_torch_first_then_the_rest_with_overrides_and_a_second_call_is_cached(
    checkout, tmp_path, monkeypatch
):
    calls = fake_uv(tmp_path, monkeypatch)
    wheel = write(tmp_path / "wheels" / CPU_WHEEL_NAME, "")
    cache = tmp_path / "cache"
    options = dict(
        cache_dir=cache, torch_wheel=wheel, skip=["ray"], commit_date="2025-08-11", extra=["Jinja2>=3"]
    )
    built = build_environment(checkout, **options)

    this_torch = env_module.installed_versions(Path(sys.executable))["torch"]
    assert built.cached is False
    assert built.python == cache / built.key / "bin" / "python"
    assert built.exclude_newer == "2025-08-11"
    assert built.installed["torch"] == this_torch
    assert built.requirements == sorted(declared_requirements(checkout).requirements + ["jinja2>=3"])
    assert built.notes[-1] == "ranges resolved as of 2025-08-11 (the commit date given)"
    commands = read_calls(calls)
    assert [command[:2] for command in commands] == [
        ["venv", "--relocatable"],
        ["pip", "install"],
        ["pip", "install"],
    ]
    assert commands[1][-4:] == ["--exclude-newer", "2025-08-11", str(wheel), "--no-config"]
    env_dir = cache / built.key
    assert (env_dir / "parity-overrides.txt").read_text().splitlines() == [f"torch=={this_torch}"] + [
        f'{name}; sys_platform == "never"'
        for name in ["apex", "bitsandbytes", "deepspeed", "flash-attn", "flashinfer-python"]
        + ["nvidia-cublas-cu12", "ray", "torchvision", "triton", "vllm", "xformers"]
    ]
    assert (env_dir / "parity-requirements.txt").read_text().splitlines() == [
        "accelerate==1.9.0",
        "datasets==4.0.0",
        "evaluate>=0.4",
        "jinja2>=3",
        'peft>=0.12; python_version >= "3.9"',
        "sacrebleu>=1.5",
        "transformers==4.54.1",
        "trl<1,>=0.9",
    ]
    assert sorted(path.name for path in cache.iterdir()) == [built.key, "logs"]
    # uv ran with TMPDIR in a scratch folder of the cache, removed with what uv left there
    uv_tmpdir = Path((tmp_path / "uv-calls.jsonl.tmpdir").read_text())
    assert uv_tmpdir.parent == cache and uv_tmpdir.name.startswith(".tmp-")
    assert not uv_tmpdir.exists()

    started = time.perf_counter()
    again = build_environment(checkout, **options)
    assert time.perf_counter() - started < 1.0
    assert again.cached is True
    assert (again.key, again.installed, again.notes) == (built.key, built.installed, built.notes)
    assert len(read_calls(calls)) == 3


def test_a_failed_build_leaves_nothing_behind_and_raises_one_line_with_the_log(tmp_path, monkeypatch):
    fake_uv(tmp_path, monkeypatch, fail="parity-requirements.txt")
    write(tmp_path / "recipe" / "requirements.txt", "no-such-package\n")
    wheel = write(tmp_path / CPU_WHEEL_NAME, "")
    cache = tmp_path / "cache"
    with pytest.raises(ParityError) as raised:
        build_environment(tmp_path / "recipe", cache_dir=cache, torch_wheel=wheel, commit_date="2025-08-11")
    message = str(raised.value)
    log = next((cache / "logs").iterdir())
    assert "\n" not in message
    assert message == (
        "environment build failed while installing the declared requirements: No solution found when "
        "resolving dependencies: Because no-such-package was not found in the package registry and you "
        f"require no-such-package, we can conclude that your requirements are unsatisfiable. (full log: {log})"
    )
    assert "no-such-package was not found" in log.read_text()
    assert [path.name for path in cache.iterdir()] == ["logs"]


def test_cache_root_is_the_argument_else_parity_cache_dir_else_home(tmp_path, monkeypatch):
    monkeypatch.setenv("PARITY_CACHE_DIR", str(tmp_path / "parity-cache"))
    assert env_module.cache_root(tmp_path / "mine") == tmp_path / "mine"
    assert env_module.cache_root() == tmp_path / "parity-cache" / "envs"
    monkeypatch.delenv("PARITY_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert env_module.cache_root() == tmp_path / "home" / ".cache" / "parity" / "envs"


def test_resolve_python_current_path_or_one_line_error(tmp_path):
    assert resolve_python("current", tmp_path) == Path(sys.executable)
    assert resolve_python(sys.executable, tmp_path) == Path(sys.executable).absolute()
    with pytest.raises(
        ParityError, match=r"^--python must be current, pinned or an interpreter path; not found: /no/py$"
    ):
        resolve_python("/no/py", tmp_path)
    broken = write(tmp_path / "python", "#!/bin/sh\necho 'cannot start' >&2\nexit 3\n")
    broken.chmod(0o755)
    with pytest.raises(ParityError, match=rf"^--python {broken} does not run: cannot start$"):
        resolve_python(str(broken), tmp_path)


# --- one real build: the ReVISE checkout at its pinned commit, through uv and the package index ----------


@needs_revise_checkout
def test_real_revise_environment_has_its_pins_and_the_cpu_torch(tmp_path):
    cache = tmp_path / "envs"
    built = build_environment(REVISE, cache_dir=cache, skip=["ray"])
    torch = find_torch_wheel()
    expected_torch = torch.version if torch.wheel else "2.6.0+cpu"
    versions = {
        name: built.installed.get(name) for name in ("trl", "transformers", "datasets", "accelerate", "peft")
    }
    assert versions == {
        "trl": "0.17.0",
        "transformers": "4.54.1",
        "datasets": "4.0.0",
        "accelerate": "1.9.0",
        "peft": "0.17.0",  # a range (lm-evaluation-harness's peft>=0.2.0) resolved as of 2025-08-11
    }
    assert built.installed["torch"] == expected_torch
    assert built.exclude_newer == "2025-08-11"
    assert not {"vllm", "ray", "triton"} & set(built.installed)
    assert "vllm skipped: GPU-only" in built.notes
    assert "ray skipped: listed in skip (the capture stubs it)" in built.notes
    imported = subprocess.run(
        [
            str(built.python),
            "-c",
            "import trl, transformers, datasets, peft, accelerate, torch; "
            "print(trl.__version__, transformers.__version__, datasets.__version__, peft.__version__, "
            "accelerate.__version__, torch.__version__)",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert imported.stdout.split() == ["0.17.0", "4.54.1", "4.0.0", "0.17.0", "1.9.0", expected_torch], (
        imported.stderr
    )

    started = time.perf_counter()
    again = build_environment(REVISE, cache_dir=cache, skip=["ray"])
    assert time.perf_counter() - started < 1.0
    assert (again.cached, again.key, again.installed) == (True, built.key, built.installed)
