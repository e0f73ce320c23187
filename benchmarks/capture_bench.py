"""Benchmark `parity capture` on the built-in pair's real checkouts (../shared/upstream), as `parity refs verify
--capture` runs them (vendor_refs/<ref>/capture.yaml), with their data mapped to ../shared/data.

Targets: under 60 s warm (environments cached, `--force` so no capture is reused) for the pair, and under 5 s
for a re-capture of an unchanged recipe. Prints wall and CPU seconds (user + system of every process the capture
waited for) per recipe, each world size's phases, and the machine's load average, since the machine may be
shared. `--cold` builds the pinned environments again in an empty parity cache (uv's download cache kept).
Run: python benchmarks/capture_bench.py [--refs llmhalluc revise] [--cold] [--jobs N]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared"
CHECKOUTS = {"llmhalluc": "halluc-f899ae51", "revise": "revise-35ed7cf"}
DATA = {"llmhalluc": {"mtybilly/GSM8K": "mtybilly-gsm8k"}, "revise": {"openai/gsm8k": "gsm8k"}}
PAIR_TARGET_S = 60.0
RECAPTURE_TARGET_S = 5.0


def options_for(ref: str, out: Path, force: bool):
    """The CaptureOptions `parity refs verify --ref REF --capture` uses, written to `out`."""
    from parity.capture.yaml_section import options_from_section
    from parity.refs.capture_check import capture_section, capture_section_path

    data = {name: str(SHARED / "data" / folder) for name, folder in DATA[ref].items()}
    section = capture_section(ref, SHARED / "upstream" / CHECKOUTS[ref], data)
    options = options_from_section(section, capture_section_path(ref))
    return dataclasses.replace(options, out=out, force=force)


def _cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_capture(options) -> dict:
    """Wall and CPU seconds of one capture call, the load average around it, and its manifest."""
    from parity.capture.pipeline import capture

    load_before, cpu_before, started = os.getloadavg()[0], _cpu_of_children(), time.monotonic()
    self_before = time.process_time()
    result = capture(options)
    return {
        "wall": time.monotonic() - started,
        "cpu": _cpu_of_children() - cpu_before + time.process_time() - self_before,
        "load": (load_before, os.getloadavg()[0]),
        "cached": result.cached,
        "manifest": result.manifest,
    }


def _phase_line(manifest: dict) -> str:
    timings = manifest.get("timings", {})
    phases = timings.get("per_world_size_phases", {})
    cpu = timings.get("per_world_size_cpu_seconds", {})
    parts = []
    for size, seconds in timings.get("per_world_size_seconds", {}).items():
        phase = phases.get(size, {})
        how = manifest.get("captured_as", {}).get(size, {}).get("mode", "?")
        parts.append(
            f"N={size} {how}: {seconds:.1f} s wall, {cpu.get(size) or 0:.1f} s CPU "
            f"(to trainer {phase.get('to_trainer_entry')}, init {phase.get('trainer_init')}, "
            f"writing {phase.get('writing_capture')})"
        )
    return "\n    ".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refs", nargs="+", default=list(CHECKOUTS), choices=list(CHECKOUTS))
    parser.add_argument("--cold", action="store_true", help="build the pinned environments in an empty cache")
    parser.add_argument("--jobs", type=int, help="world sizes side by side (PARITY_CAPTURE_JOBS)")
    args = parser.parse_args()
    missing = [ref for ref in args.refs if not (SHARED / "upstream" / CHECKOUTS[ref]).is_dir()]
    if missing:
        print(f"upstream checkout not found for {missing[0]} under {SHARED / 'upstream'}", file=sys.stderr)
        return 2
    if args.jobs:
        os.environ["PARITY_CAPTURE_JOBS"] = str(args.jobs)
    scratch = Path(tempfile.mkdtemp(prefix="capture-bench-"))
    try:
        return _measure(args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _measure(args: argparse.Namespace, scratch: Path) -> int:
    """Capture each ref (forced, then unchanged) under `scratch`; print the times and the ratios."""
    if args.cold:
        os.environ["PARITY_CACHE_DIR"] = str(scratch / "cache")
    mode = "cold (environments built)" if args.cold else "warm (environments cached)"
    print(f"machine: {os.cpu_count()} CPUs; capture {mode}, --force; then an unchanged re-capture")
    totals = {"wall": 0.0, "cpu": 0.0, "recapture": 0.0}
    for ref in args.refs:
        out = scratch / ref
        forced = timed_capture(options_for(ref, out, force=True))
        again = timed_capture(options_for(ref, out, force=False))
        assert again["cached"], f"{ref}: the unchanged re-capture was not served from the cache"
        totals["wall"] += forced["wall"]
        totals["cpu"] += forced["cpu"]
        totals["recapture"] = max(totals["recapture"], again["wall"])
        print(
            f"{ref}: {forced['wall']:.1f} s wall, {forced['cpu']:.1f} s CPU, load {forced['load'][0]:.1f}"
            f"->{forced['load'][1]:.1f}; re-capture {again['wall']:.2f} s "
            f"({again['wall'] / RECAPTURE_TARGET_S:.2f}x of {RECAPTURE_TARGET_S:g} s)"
        )
        print("    " + _phase_line(forced["manifest"]))
        bytecode = forced["manifest"].get("python", {}).get("bytecode")
        if bytecode and args.cold:
            print(f"    environment modules compiled to bytecode in {bytecode.get('seconds')} s")
    label = "pair" if len(args.refs) == 2 else "total"
    print(
        f"{label}: {totals['wall']:.1f} s wall ({totals['wall'] / PAIR_TARGET_S:.2f}x of {PAIR_TARGET_S:g} s), "
        f"{totals['cpu']:.1f} s CPU (/{os.cpu_count()} CPUs = {totals['cpu'] / (os.cpu_count() or 1):.1f} s); "
        f"slowest re-capture {totals['recapture']:.2f} s ({totals['recapture'] / RECAPTURE_TARGET_S:.2f}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
