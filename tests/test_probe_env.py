"""Tests for the env probe: declared pins against each other and against the running versions."""

from __future__ import annotations

from importlib.metadata import version
from types import SimpleNamespace

import pytest
from conftest import make

from parity.probes import ProbeContext
from parity.probes.env import probe, satisfied

CTX = ProbeContext()


@pytest.fixture(scope="module")
def result(synthetic_pair):
    return probe(*synthetic_pair, CTX)


def test_pins_that_differ(result):
    low = {f.key: (f.a, f.b) for f in result.findings if f.severity == "low"}
    assert low == {
        "env.accelerate": (">=1.0.0", "==1.9.0"),
        "env.datasets": (">=2.20.0", "==4.0.0"),
        "env.deepspeed": (">=0.14.0", None),
        "env.peft": (">=0.12.0", None),
        "env.torch": (None, "==2.6.0"),
        "env.transformers": (">=4.45.0", "==4.54.1"),
        "env.trl": (">=0.9.0", "==0.17.0"),
    }
    assert all(f.align is None for f in result.findings)


def test_running_versions_violating_one_side(result):
    info = {f.key: f for f in result.findings if f.severity == "info"}
    assert set(info) == {
        "env.accelerate.running",
        "env.datasets.running",
        "env.torch.running",
        "env.transformers.running",
        "env.trl.running",
    }
    trl = info["env.trl.running"]
    assert (trl.a, trl.b) == (True, False)
    assert trl.evidence == {"recipe": "revise", "pin": "==0.17.0", "running": version("trl")}


def test_values(result):
    assert result.values["b"]["trl"] == {"pin": "==0.17.0", "running": version("trl"), "satisfied": False}
    assert result.values["a"]["trl"]["satisfied"] is True
    assert result.values["a"]["deepspeed"]["satisfied"] is None


def test_identical_pair_has_no_findings(revise):
    assert probe(revise, revise, CTX).findings == []


def test_pin_change_keeping_the_verdict_is_one_finding(revise):
    [finding] = probe(revise, make("revise", ["env.trl===0.18.0"], samples=16), CTX).findings
    assert (finding.key, finding.severity, finding.a, finding.b) == ("env.trl", "low", "==0.17.0", "==0.18.0")


def test_pin_change_flipping_the_verdict_adds_the_violation(revise):
    findings = probe(revise, make("revise", ["env.trl=>=1.0"], samples=16), CTX).findings
    assert {(f.key, f.severity, f.a, f.b) for f in findings} == {
        ("env.trl", "low", "==0.17.0", ">=1.0"),
        ("env.trl.running", "info", False, True),
    }


def test_satisfied_uses_the_public_version():
    assert satisfied(">=2.4", "2.13.0+cpu") is True
    assert satisfied("==2.6.0", "2.13.0+cpu") is False
    assert satisfied(">=1.0", None) is None


def _captured(name: str, versions: dict[str, str]) -> SimpleNamespace:
    """A captured recipe as the env probe reads it: pins from the capture's versions, its manifest's versions."""
    recipe = SimpleNamespace(name=name, env={lib: f"=={v}" for lib, v in versions.items()})
    captured = SimpleNamespace(captured=SimpleNamespace(manifest={"versions": versions}))
    return SimpleNamespace(recipe=recipe, captured=captured, measurements={})


def test_a_capture_is_measured_under_the_versions_it_ran_not_the_installed_ones():
    old = _captured("tf-old", {"transformers": "4.46.3", "trl": "0.12.0"})
    new = _captured("tf-new", {"transformers": "4.47.1", "trl": "0.12.0"})
    result = probe(old, new, CTX)
    [finding] = result.findings  # no env.*.running: each capture ran the version it pins
    assert (finding.key, finding.severity, finding.a, finding.b) == (
        "env.transformers",
        "low",
        "==4.46.3",
        "==4.47.1",
    )
    assert (
        finding.summary == "transformers: tf-old ran 4.46.3 in its capture, tf-new ran 4.47.1 in its capture"
    )
    assert (finding.evidence["a_ran_in"], finding.evidence["b_ran_in"]) == ("capture", "capture")
    assert result.values["a"]["transformers"] == {
        "pin": "==4.46.3",
        "running": "4.46.3",
        "satisfied": True,
        "ran_in": "capture",
    }
    assert version("transformers") not in finding.summary


def test_what_stands_in_for_a_library_a_capture_ran_in_another_version():
    from parity.probes.env import installed_instead

    old = _captured("trl-old", {"trl": "0.15.2"})
    assert installed_instead(old, "trl") == f"the installed trl {version('trl')} (the capture ran 0.15.2)"
    assert installed_instead(_captured("trl-here", {"trl": version("trl")}), "trl") is None
    assert installed_instead(SimpleNamespace(captured=None), "trl") is None
