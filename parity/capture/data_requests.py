"""The dataset requests a capture's manifest records: which hub dataset the recipe's own code loaded (name,
config, split), which local directory served it, and the `push_to_hub` hand-offs from one step to the next."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PUSHED_EARLIER = "pushed earlier in this capture"
"""The manifest's source of a load served from an earlier step's `push_to_hub`."""


@dataclass(frozen=True)
class DataRequests:
    """The origin datasets a capture loaded (not counting reloads of its own pushes), and its pushes."""

    loads: list[dict[str, Any]]
    pushes: list[dict[str, Any]]
    reloads: list[dict[str, Any]]
    local: list[str]
    """Loads of local files and folders (`load_dataset("json", data_files=...)`, a folder path), as called."""

    @property
    def names(self) -> list[str]:
        return sorted({load["name"] for load in self.loads})

    @property
    def configs(self) -> list[str | None]:
        return sorted({load.get("config") for load in self.loads}, key=str)

    @property
    def served_from(self) -> list[str]:
        return sorted({str(load.get("served_from")) for load in self.loads})

    def hub(self) -> dict[str, Any]:
        """The datasets named, as the data probe's identity compares them."""
        return {
            "path": ", ".join(self.names) or "none recorded",
            "config": ", ".join(str(c) for c in self.configs if c) or None,
            "splits_requested": sorted({load.get("split") or "all" for load in self.loads}),
            "pushed": [push.get("repo_id") for push in self.pushes],
        }

    def text(self) -> str:
        """One line: each load (name, config, split -> local directory) and each push hand-off."""
        parts = [
            f"{load['name']}"
            + (f" ({load['config']})" if load.get("config") else "")
            + f" split {load.get('split') or 'all'} <- {load.get('served_from')}"
            for load in self.loads
        ]
        parts += [
            f"push_to_hub {push.get('repo_id')} ({_rows_text(push.get('rows'))}) reloaded by the next step"
            if any(reload.get("name") == push.get("repo_id") for reload in self.reloads)
            else f"push_to_hub {push.get('repo_id')} ({_rows_text(push.get('rows'))})"
            for push in self.pushes
        ]
        parts += [f"{call} (local)" for call in self.local if not self.loads]
        return "; ".join(parts) or "no dataset load recorded"


def _rows_text(rows: Any) -> str:
    if not isinstance(rows, dict):
        return "rows not recorded"
    return ", ".join(f"{split} {count}" for split, count in rows.items())


def _unique(events: list[dict[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    seen, out = set(), []
    for event in events:
        key = tuple(str(event.get(k)) for k in keys)
        if key not in seen:
            seen.add(key)
            out.append(event)
    return out


def data_requests(manifest: dict[str, Any]) -> DataRequests:
    """The dataset loads and pushes of a capture's manifest (repeats across world sizes counted once)."""
    events = manifest.get("redirects", {}).get("events", [])
    loads = [e for e in events if e.get("kind") == "dataset-load"]
    return DataRequests(
        loads=_unique(
            [e for e in loads if e.get("source") != PUSHED_EARLIER],
            ("name", "config", "split", "served_from"),
        ),
        pushes=_unique([e for e in events if e.get("kind") == "dataset-push"], ("repo_id", "config")),
        reloads=_unique([e for e in loads if e.get("source") == PUSHED_EARLIER], ("name", "config", "split")),
        local=list(
            dict.fromkeys(
                _call_text(load.get("call", {})) for load in manifest.get("rows", {}).get("loads", [])
            )
        ),
    )


def _call_text(call: dict[str, Any]) -> str:
    """`load_dataset(path, data_files=...)` of a recorded load, in words."""
    files = call.get("data_files")
    files = ", ".join(files) if isinstance(files, list) else files
    return (
        f"{call.get('path')}"
        + (f" {files}" if files else "")
        + (f" split {call['split']}" if call.get("split") else "")
    )
