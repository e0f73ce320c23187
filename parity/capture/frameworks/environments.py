"""Framework environments: `--python framework:NAME[==VERSION]` builds the framework's own virtualenv with uv
(CPU torch, the fixes it needs on a CPU), cached beside the pinned environments of checkouts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement
from packaging.version import InvalidVersion, Version

from parity.capture.environment import (
    Environment,
    build_planned,
    find_torch_wheel,
    normalize_requirement,
    plan_install,
)
from parity.errors import ParityError
from parity.registries import Registry

PREFIX = "framework:"
NOT_LOADING_BESIDE_CPU_TORCH = ("torchvision", "torchaudio")
"""The index's builds are made for another torch: beside the CPU torch 2.13 they fail to import
(`operator torchvision::nms does not exist`, torchaudio's `_torchaudio.so`), so they are never installed."""


@dataclass(frozen=True)
class FrameworkEnvironment:
    """How one framework's environment is built: its package, the version taken when none is asked, the date
    its ranges resolve as of (a rebuild gets the same versions), and what differs from a plain install."""

    package: str
    version: str
    resolve_as_of: str
    extras: tuple[str, ...] = ()
    keep_gpu_packages: tuple[str, ...] = ()
    """GPU-only packages installed all the same: the framework imports them unconditionally."""
    skip: tuple[str, ...] = NOT_LOADING_BESIDE_CPU_TORCH
    notes: tuple[str, ...] = ()

    def requirement(self, version: str | None = None) -> str:
        extras = f"[{','.join(self.extras)}]" if self.extras else ""
        return normalize_requirement(f"{self.package}{extras}=={version or self.version}")


FRAMEWORK_ENVIRONMENTS: Registry[FrameworkEnvironment] = Registry("framework environment")
_SKIP_NOTE = (
    "torchvision and torchaudio not installed: the index's builds do not load beside the CPU torch "
    "(the capture stubs torchaudio where the framework imports it)"
)
FRAMEWORK_ENVIRONMENTS.add(
    "trl",
    FrameworkEnvironment("trl", "1.16.0", "2026-12-06", extras=("peft",), notes=(_SKIP_NOTE,)),
)
FRAMEWORK_ENVIRONMENTS.add(
    "llamafactory",
    FrameworkEnvironment("llamafactory", "0.9.5", "2026-12-06", notes=(_SKIP_NOTE,)),
)
FRAMEWORK_ENVIRONMENTS.add(
    "axolotl",
    FrameworkEnvironment(
        "axolotl",
        "0.19.0",
        "2026-12-06",
        keep_gpu_packages=("bitsandbytes", "triton", "xformers"),
        notes=(
            _SKIP_NOTE,
            "bitsandbytes, triton and xformers kept although GPU-only: axolotl imports them on its training path "
            "(axolotl/loaders/adapter.py, axolotl/kernels/geglu.py)",
        ),
    ),
)


def is_framework_choice(choice: str) -> bool:
    return choice.startswith(PREFIX)


def parse_choice(choice: str) -> tuple[str, FrameworkEnvironment, str]:
    """`framework:NAME` or `framework:NAME==VERSION` -> (name, spec, version); anything else is a ParityError."""
    text = choice.removeprefix(PREFIX).strip()
    name, separator, version = text.partition("==")
    name = name.strip().lower()
    spec = FRAMEWORK_ENVIRONMENTS.get(name)
    version = version.strip() if separator else spec.version
    try:
        Version(version)
    except InvalidVersion:
        raise ParityError(
            f"--python {choice}: '{version}' is not a version (framework:NAME==VERSION)"
        ) from None
    return name, spec, version


def build_framework_environment(
    choice: str,
    *,
    cache_dir: Path | None = None,
    torch_wheel: str | Path | None = None,
    offline_ok: bool = True,
) -> Environment:
    """The framework's environment for `--python framework:NAME[==VERSION]`, from the cache or built with uv
    (`parity.capture.environment.build_planned`: CPU torch, GPU-only packages dropped unless kept, pure-Python
    wheels made for another Python replaced)."""
    name, spec, version = parse_choice(choice)
    try:
        requirement = spec.requirement(version)
    except InvalidRequirement as error:
        raise ParityError(f"--python {choice}: {error}") from None
    plan = plan_install([requirement], find_torch_wheel(torch_wheel), spec.skip, spec.keep_gpu_packages)
    date_note = f"ranges resolved as of {spec.resolve_as_of} (the date registered for framework {name})"
    return build_planned(
        plan,
        spec.resolve_as_of,
        date_note,
        spec.notes,
        cache_dir=cache_dir,
        offline_ok=offline_ok,
        fix_wheel_tags=True,
    )
