"""Framework adapters, one module per framework: each records the framework's own parsed settings as its
code builds them, applies what the framework needs on a CPU, and maps its settings to parity's effective
values. At the trainer, the most specific adapter that saw its framework run writes `framework.json`."""

from __future__ import annotations

from typing import Any

from parity_capture_hook import models, state
from parity_capture_hook.frameworks import axolotl, llamafactory, trl
from parity_capture_hook.frameworks.common import MEASURED, effective

ADAPTERS = {"axolotl": axolotl, "llamafactory": llamafactory, "trl": trl}
"""Most specific first: Axolotl and LLaMA-Factory build on TRL and transformers."""


def install() -> None:
    for adapter in ADAPTERS.values():
        adapter.install()


def chosen(trainer: Any) -> tuple[str, Any]:
    """(name, adapter) of the framework that built `trainer`: the first adapter that saw its framework parse
    settings, else TRL for a TRL trainer or arguments class, else transformers alone."""
    for name, adapter in ADAPTERS.items():
        if adapter.active():
            return name, adapter
    if trl.owns(trainer):
        return "trl", trl
    return "transformers", None


def write_record(trainer: Any) -> None:
    """framework.json: the framework, its parsed settings with provenance, and parity's effective values."""
    name, adapter = chosen(trainer)
    record: dict[str, Any] = {"framework": name}
    try:
        record.update(trl.transformers_record(trainer) if adapter is None else adapter.record(trainer))
    except Exception as err:  # noqa: BLE001 - an adapter a framework version outgrew is reported, not fatal
        first_line = (str(err).strip().splitlines() or [""])[0][:300]
        record["adapter_error"] = f"the {name} adapter raised {type(err).__name__}: {first_line}"
    record.setdefault("effective", {})
    if "load_dtype" not in record["effective"]:
        request = models.STAND_INS[-1]["request"] if models.STAND_INS else None
        if request is not None:
            record["effective"]["load_dtype"] = effective(
                request.get("dtype"), f"{request.get('entry')}(dtype=...)", MEASURED
            )
    record["stubs"] = state_events("framework-stub")
    record["launch_decisions"] = state_events("launch-decision")
    state.write_json("framework.json", record)


def state_events(kind: str) -> list[dict[str, Any]]:
    """This run's events of one kind (every process of the run), without process ids and times."""
    import json

    path = state.state_dir() / "events.jsonl"
    if not path.is_file():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        event = json.loads(line)
        if event.get("kind") == kind:
            events.append({key: value for key, value in event.items() if key not in ("pid", "time", "kind")})
    unique = []
    for event in events:
        if event not in unique:
            unique.append(event)
    return unique
