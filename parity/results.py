"""`parity.load(DIR)`: a diff report, a `parity run` directory or a `parity bisect` directory as pandas frames.

`.findings()`, `.curves()` and `.attribution()` are DataFrames (empty where the directory holds no such data).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parity.errors import ParityError

FINDING_COLUMNS = ["axis", "key", "severity", "a", "b", "summary", "align"]
CURVE_COLUMNS = ["run", "leg", "aligned", "seed", "step", "loss"]
ATTRIBUTION_COLUMNS = [
    "rank",
    "name",
    "effect",
    "low",
    "high",
    "share",
    "indistinguishable_from_zero",
    "keys",
]


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _jsonl(path: Path) -> list[dict[str, Any]]:
    from parity.run.files import read_jsonl

    return read_jsonl(path)


@dataclass
class Results:
    """One results directory; `kind` is 'diff', 'run' or 'bisect'."""

    path: Path
    kind: str

    def frame(self):
        """The directory's main table: attribution (bisect), loss curves (run) or findings (diff)."""
        return {"bisect": self.attribution, "run": self.curves, "diff": self.findings}[self.kind]()

    def findings(self):
        """Findings of the diff (diff), of the aligned pair's pre-flight (run) or of the bisected pair."""
        import pandas as pd

        source = {"diff": "report.json", "run": "preflight.json", "bisect": "diff.json"}[self.kind]
        data = _json(self.path / source) if (self.path / source).is_file() else {}
        if self.kind == "run":
            rows = [{**f, "aligned_axis_failed": True} for f in data.get("failed", [])]
            rows += [{**f, "aligned_axis_failed": False} for f in data.get("remaining", [])]
        else:
            rows = data.get("findings", [])
        frame = pd.DataFrame(rows)
        return frame if len(frame) else pd.DataFrame(columns=FINDING_COLUMNS)

    def curves(self):
        """Per-step training loss: both legs of a run, every run of a bisect (one row per run and step)."""
        import pandas as pd

        rows: list[dict[str, Any]] = []
        if self.kind == "run":
            for leg in ("a", "b"):
                for record in _jsonl(self.path / f"{leg}.jsonl"):
                    rows.append({"run": self.path.name, "leg": leg, "aligned": None, "seed": 0, **record})
        elif self.kind == "bisect":
            for path in sorted((self.path / "runs").glob("*/run.json")):
                run = _json(path)
                label = "+".join(run["aligned"]) or "none"
                for record in run["curve"]:
                    rows.append(
                        {
                            "run": run["key"],
                            "leg": run["leg"],
                            "aligned": label,
                            "seed": run["seed"],
                            **record,
                        }
                    )
        frame = pd.DataFrame(rows)
        return frame if len(frame) else pd.DataFrame(columns=CURVE_COLUMNS)

    def attribution(self):
        """One row per axis: rank, effect, its 95% interval (low, high), share of the gap, spec keys."""
        import pandas as pd

        if self.kind != "bisect":
            return pd.DataFrame(columns=ATTRIBUTION_COLUMNS)
        data = _json(self.path / "attribution.json")
        rows = [
            {
                "rank": a["rank"],
                "name": a["name"],
                "effect": a["effect"],
                "low": a["interval"][0],
                "high": a["interval"][1],
                "share": a["share"],
                "indistinguishable_from_zero": a["indistinguishable_from_zero"],
                "keys": a["keys"],
                "measured_as": a["measured_as"],
            }
            for a in data["axes"]
        ]
        frame = pd.DataFrame(rows)
        return (
            frame.sort_values("rank").reset_index(drop=True)
            if len(frame)
            else pd.DataFrame(columns=ATTRIBUTION_COLUMNS)
        )


def load(path: str | Path) -> Results:
    """Open a results directory: attribution.json (bisect), summary.json (run) or report.json (diff)."""
    directory = Path(path)
    for name, kind in (("attribution.json", "bisect"), ("summary.json", "run"), ("report.json", "diff")):
        if (directory / name).is_file():
            return Results(directory, kind)
    raise ParityError(
        f"{directory}: not a parity results directory (no attribution.json, summary.json or report.json)"
    )
