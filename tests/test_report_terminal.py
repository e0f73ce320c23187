"""Terminal, HTML and SVG rendering of a diff report, on a small hand-written report with known findings."""

from __future__ import annotations

import io
import re

from rich.console import Console

from parity.report.html import context_table, key_html, render_html
from parity.report.svg import HEIGHT, LEFT, TOP, line_chart_svg
from parity.report.tables import elided_list, short
from parity.report.terminal import fail_on_lines, headline, mask_text, print_mask_example, print_summary
from parity.run.report import accuracy_cell


def finding(severity: str, axis: str, key: str, summary: str, align: str | None = None) -> dict:
    return {
        "severity": severity,
        "axis": axis,
        "key": key,
        "summary": summary,
        "a": 1,
        "b": 2,
        "align": align,
        "evidence": {},
    }


REPORT = {
    "a": "mine",
    "b": "revise",
    "context": {"data": "synthetic(seed=0)", "world_size": 1, "samples": 256, "probes": ["batch", "data"]},
    "findings": [
        finding(
            "high",
            "batch",
            "batch.global_batch",
            "examples per optimizer step: mine 128 vs revise 32 " * 5,
            "batch",
        ),
        finding(
            "high",
            "loss_mask",
            "loss_mask.prompt_tokens_trained",
            "revise trains on prompt tokens",
            "loss_mask",
        ),
        finding("medium", "schedule", "schedule.shape", "cosine vs linear", "schedule"),
        finding("medium", "schedule", "training.lr_scheduler_type", "cosine vs linear", "schedule"),
        finding("low", "env", "env.trl", "pins differ"),
        finding("low", "env", "env.peft", "pins differ"),
        finding("info", "precision", "model.torch_dtype", "dtype"),
    ],
    "probes": {
        "loss_mask": {
            "example": {
                "a": [
                    ["<|user|>", False],
                    ["Ċ", False],
                    ["Q", False],
                    ["A", True],
                    ["Ġ4", True],
                    ["<eos>", True],
                ],
                "b": [["<|user|>", True], ["Q", True], ["A", False]],
            }
        }
    },
}


def plain_lines(report: dict, refs=None) -> list[str]:
    return [line.plain for line in headline(report, refs)]


def test_headline_is_compact_and_says_severity_in_words():
    lines = plain_lines(REPORT)
    assert lines[0] == "parity diff mine (A) vs revise (B): 7 findings"
    assert lines[1] == "  2 high · 2 medium · 2 low · 1 info"
    assert lines[2] == "  data synthetic(seed=0) · world size 1 · samples 256"
    assert "HIGH (2): what is trained on, or how much, differs" in lines
    assert " schedule   shape, training.lr_scheduler_type" in lines
    assert "LOW (2): env 2" in lines
    assert "INFO (1): precision 1" in lines
    assert lines[-1] == "next: parity run --a mine --b revise --align batch,loss_mask,schedule"
    assert all(len(line) <= 80 for line in lines[:-1])


def test_high_summaries_wrap_under_the_axis_and_stop_after_three_lines():
    lines = plain_lines(REPORT)
    start = lines.index(" batch      examples per optimizer step: mine 128 vs revise 32 examples per")
    assert lines[start + 1].startswith(" " * 12)
    assert lines[start + 2].endswith("…")
    assert lines[start + 3].startswith(" loss_mask  revise trains on prompt tokens")


def test_next_repeats_the_refs_the_user_gave():
    assert plain_lines(REPORT, ("recipes/mine.yaml", "revise"))[-1].startswith(
        "next: parity run --a recipes/mine.yaml --b revise --align"
    )


def test_print_summary_fits_80_columns_and_keeps_next_on_one_line():
    buffer = io.StringIO()
    print_summary(Console(file=buffer, width=80, color_system=None), REPORT)
    lines = buffer.getvalue().splitlines()
    assert len(lines) == len(plain_lines(REPORT))
    assert lines[-1] == "next: parity run --a mine --b revise --align batch,loss_mask,schedule"


def test_fail_on_lines_name_each_failing_finding():
    lines = fail_on_lines(REPORT["findings"], "medium")
    assert lines[0] == "--fail-on medium: 4 finding(s) at or above medium:"
    assert lines[2].startswith("  high   loss_mask: loss_mask.prompt_tokens_trained: revise trains on prompt")
    assert lines[4] == "  medium schedule: training.lr_scheduler_type: cosine vs linear"
    assert len(lines[1]) == 80 and lines[1].endswith("…")
    assert fail_on_lines(REPORT["findings"][4:], "high") == []


def test_mask_text_brackets_trained_runs():
    example = REPORT["probes"]["loss_mask"]["example"]
    assert mask_text(example["a"]).plain == "<|user|> ⏎\n Q [A ·4 <eos> ]"
    assert mask_text(example["b"]).plain == "[<|user|> Q ]A "


def test_mask_example_readable_without_colour():
    buffer = io.StringIO()
    print_mask_example(Console(file=buffer, width=80, color_system=None), REPORT)
    text = buffer.getvalue()
    assert "[bracketed]" in text and "tokens carry loss" in text
    assert "[A ·4 <eos> ]" in text


def test_long_lists_are_elided_with_a_count():
    assert elided_list(list(range(100))) == "[0, 1, 2, 3, 4, 5, … 92 more …, 98, 99]"
    assert short(list(range(100)), 56) == "[0, 1, 2, 3, 4, 5, … 92 more …, 98, 99]"
    assert short([1, 2, 3]) == "[1, 2, 3]"


def test_html_context_is_a_table_and_keys_wrap_only_at_separators():
    table = context_table(REPORT["context"])
    assert "<tr><th scope='row'>data source</th><td>synthetic(seed=0)</td></tr>" in table
    assert "<tr><th scope='row'>probes run</th><td>batch, data</td></tr>" in table
    assert key_html("training.lr_scheduler_type") == "<code>training.<wbr>lr_<wbr>scheduler_<wbr>type</code>"
    page = render_html(REPORT)
    assert "{&quot;data&quot;" not in page
    assert "th{background:#f3f3f3;white-space:nowrap}" in page


def test_svg_legend_sits_above_the_plot_area():
    svg = line_chart_svg({"mine": [0.0, 1.0, 0.5], "revise": [0.0, 0.2, 1.0]}, "optimizer step", "LR")
    legend_y = [float(y) for y in re.findall(r"<text x='[\d.]+' y='([\d.]+)'>(?:mine|revise)</text>", svg)]
    assert legend_y == [18.0, 18.0]
    assert all(y < TOP for y in legend_y)
    points = re.findall(r"points='([^']+)'", svg)
    ys = [float(p.split(",")[1]) for series in points for p in series.split()]
    xs = [float(p.split(",")[0]) for series in points for p in series.split()]
    assert min(ys) >= TOP and max(ys) <= HEIGHT
    assert min(xs) >= LEFT
    assert "stroke-dasharray" in svg


def test_accuracy_has_its_denominator():
    assert accuracy_cell({"accuracy": 0.625, "n": 8, "extracted": 8}) == "62.5% (5/8)"
    assert accuracy_cell({"accuracy": None, "n": 0}) is None


def test_unwritable_report_directory_is_one_parity_error(tmp_path):
    import pytest

    from parity.errors import ParityError
    from parity.report import write_reports

    (tmp_path / "f").write_text("x")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    expected = {
        "f": "f is a file, not a directory",
        "f/reports": "f is a file, not a directory",
        "loop/r": "loop is a broken or looping symbolic link",
    }
    for out, reason in expected.items():
        with pytest.raises(ParityError) as caught:
            write_reports(REPORT, tmp_path / out, ("json",))
        assert str(caught.value) == f"--out {tmp_path / out}: cannot write report.json ({tmp_path}/{reason})"
    assert write_reports(REPORT, tmp_path / "ok", ("json",)) == [tmp_path / "ok" / "report.json"]


def test_progress_lines_for_logs():
    from parity.report.terminal import duration_text, progress_due, progress_line

    assert [s for s in range(1, 101) if progress_due(s, 100)] == [1, *range(5, 101, 5)]
    assert [s for s in range(1, 4) if progress_due(s, 3)] == [1, 2, 3]
    assert duration_text(42.4) == "42s" and duration_text(185) == "3m05s" and duration_text(7620) == "2h07m"
    assert (
        progress_line("A revise", 40, 633, 60.0, 1.23456)
        == "A revise: step 40/633 (6%) loss 1.2346 · 1.50 s/step · elapsed 1m00s · ETA 14m50s"
    )
    assert progress_line("B x", 10, None, 5.0, None) == "B x: step 10 · 0.50 s/step · elapsed 5s"


def test_counts_per_axis_wrap_between_items():
    from parity.report.terminal import _packed

    assert _packed(["config 5", "template 1", "env 7", "versions 1"], 24) == [
        "config 5, template 1,",
        "env 7, versions 1",
    ]
