"""The manifest of a captured recipe, assembled from the runs' event logs: redirects, launch table per world
size, warnings, library versions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from parity.capture.cache import SCHEMA_VERSION
from parity.capture.checkout import git_commit
from parity.capture.options import CaptureOptions, recorded_env
from parity.capture.runner import HUB_OFFLINE, TELEMETRY_OFF, TRACKERS_OFF

REDIRECT_KINDS = (
    "dataset-load",
    "dataset-push",
    "model-load",
    "hub-push",
    "tracker",
    "cpu-refusal",
    "stub-import",
    "dataset-load-ignored",
)


def read_events(state_dir: Path) -> list[dict[str, Any]]:
    path = state_dir / "events.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _without_process(event: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in event.items() if key not in ("pid", "time")}


def unique(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events with the same content (ignoring process and time) once, in first-seen order."""
    seen: dict[str, dict[str, Any]] = {}
    for event in events:
        seen.setdefault(json.dumps(_without_process(event), sort_keys=True), _without_process(event))
    return list(seen.values())


def redirects(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return unique([event for event in events if event["kind"] in REDIRECT_KINDS])


def warnings_raised(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each distinct warning once, with how many times it was raised."""
    counted: dict[tuple[str, str], dict[str, Any]] = {}
    for event in events:
        if event["kind"] != "warning":
            continue
        key = (event.get("source", ""), event.get("message", ""))
        entry = counted.setdefault(key, {**_without_process(event), "count": 0})
        entry["count"] += 1
    return [{key: value for key, value in entry.items() if key != "kind"} for entry in counted.values()]


def launch_row(
    world_size: int, events: list[dict[str, Any]], training_args: dict[str, Any]
) -> dict[str, Any]:
    """Processes (from the launcher, 1 without one), per-device batch, accumulation and global batch."""
    launchers = [event for event in events if event["kind"] == "launcher"]
    launcher = launchers[-1] if launchers else None
    processes = int(launcher["processes"]) if launcher else 1
    fields = training_args.get("fields", {})
    per_device = fields.get("per_device_train_batch_size")
    accumulation = fields.get("gradient_accumulation_steps")
    global_batch = per_device * accumulation * processes if per_device and accumulation else None
    return {
        "world_size": world_size,
        "gpus_listed": world_size,
        "nvidia_smi_calls": sum(1 for event in events if event["kind"] == "nvidia-smi"),
        "launcher": None
        if launcher is None
        else {
            key: launcher.get(key)
            for key in (
                "launcher",
                "argv",
                "options",
                "config",
                "config_files",
                "processes_from",
                "script",
                "script_args",
                "script_runs",
            )
        },
        "processes": processes,
        "processes_from": launcher["processes_from"] if launcher else "no launcher: one process",
        "per_device_train_batch_size": per_device,
        "gradient_accumulation_steps": accumulation,
        "global_batch": global_batch,
    }


def phases(events: list[dict[str, Any]], started_at: float | None, seconds: float, stopped_at: float | None):
    """Where one run's wall time went, from the hook's event times: up to the trainer's entry, inside
    Trainer.__init__, writing the capture, and the exit (None where a mark is missing)."""
    times = {event["kind"]: event["time"] for event in events if event["kind"].startswith("trainer-")}
    entry, constructed = times.get("trainer-entry"), times.get("trainer-constructed")

    def span(start: float | None, end: float | None) -> float | None:
        return None if start is None or end is None else round(end - start, 2)

    return {
        "to_trainer_entry": span(started_at, entry),
        "trainer_init": span(entry, constructed),
        "writing_capture": span(constructed, stopped_at),
        "exit": span(stopped_at, None if started_at is None else started_at + seconds),
    }


def build_manifest(
    options: CaptureOptions,
    key: str,
    interpreter: dict[str, Any],
    served: dict,
    dotenv: str | None,
    runs: list[dict[str, Any]],
    seconds: float,
    checkout_hash: str,
    left_out: tuple[str, ...] = (),
) -> dict[str, Any]:
    """manifest.json: the command, checkout, interpreter, redirects, launch table, warnings and timings (the
    values of secret-looking --env names redacted)."""
    first = runs[0]
    all_events = [event for run in runs for event in run["events"]]
    return {
        "schema_version": SCHEMA_VERSION,
        "cache_key": key,
        "command": list(options.command),
        "checkout": {
            "path": str(options.checkout.resolve()),
            "git_commit": git_commit(options.checkout),
            "content_sha256": checkout_hash,
            "left_out_of_the_copy": list(left_out),
        },
        "python": {**interpreter, "version": first["versions"].get("python")},
        "versions": first["versions"],
        "stopped_at": first["trainer"],
        "redirects": {
            "tokenizers": served,
            "data": {name: str(Path(folder).resolve()) for name, folder in options.data.items()},
            "events": redirects(first["events"]),
            "hub_offline": [f"{name}={value}" for name, value in HUB_OFFLINE.items()],
            "trackers_disabled": [f"{name}={value}" for name, value in TRACKERS_OFF.items()],
            "telemetry_disabled": [f"{name}={value}" for name, value in TELEMETRY_OFF.items()],
        },
        "stubs": list(options.stubs),
        "env": {"variables": recorded_env(options.env), "dotenv": dotenv},
        "launch": [run["launch"] for run in runs],
        "warnings": warnings_raised(all_events),
        "datasets": first["datasets"],
        "captured_as": {str(run["world_size"]): run["captured_as"] for run in runs},
        "timings": {
            "total_seconds": round(seconds, 2),
            "per_world_size_seconds": {str(run["world_size"]): round(run["seconds"], 2) for run in runs},
            "per_world_size_phases": {
                str(run["world_size"]): phases(
                    run["events"], run["started_at"], run["seconds"], run["stopped_time"]
                )
                for run in runs
            },
            "writing_seconds": first["writing_seconds"],
            "per_world_size_cpu_seconds": {
                str(run["world_size"]): None if run["cpu_seconds"] is None else round(run["cpu_seconds"], 2)
                for run in runs
            },
        },
        "options": {
            "world_sizes": list(options.world_sizes),
            "timeout": options.timeout,
            "python": options.python,
            **({"train_step": True} if options.train_step else {}),
        },
    }
