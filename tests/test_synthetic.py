"""Tests for the synthetic GSM8K-format generator."""

from __future__ import annotations

import ast
import operator
import random
import re
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parity.tasks.gsm8k import synthetic
from parity.tasks.gsm8k.synthetic import generate_rows, generate_splits

ANNOTATION = re.compile(r"<<([^=<>]*)=([^<>]*)>>")
EXPR = re.compile(r"^[0-9+\-*/.()]+$")
VALUE = re.compile(r"^-?\d+(\.\d{1,2})?$")
FINAL = re.compile(r"^#### -?\d+(\.\d+)?$")
WRITTEN = re.compile(r"^-?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?(?![\d,]*\d)")
THOUSANDS = re.compile(r"\d,\d{3}")
DECIMAL = re.compile(r"\d\.\d")
NEGATIVE = re.compile(r"(?<![\w)])-\d")

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}


def _eval(node: ast.AST) -> Fraction:
    """Exact arithmetic over BinOp, UnaryOp and numeric Constant nodes only."""
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return _BINOPS[type(node.op)](_eval(node.left), _eval(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return Fraction(repr(node.value))
    raise ValueError(f"unsupported node {ast.dump(node)}")


def safe_eval(expr: str) -> Fraction:
    """Evaluate a calculator expression without eval()."""
    return _eval(ast.parse(expr, mode="eval"))


def _check_row(row: dict[str, str]) -> None:
    """Assert every GSM8K format property of one row."""
    assert set(row) == {"question", "answer"}
    question, answer = row["question"], row["answer"]
    assert question.endswith("?")
    assert "<<" not in question
    lines = answer.split("\n")
    assert 2 <= len(lines) - 1 <= 4
    assert FINAL.match(lines[-1]), lines[-1]
    last_value = None
    for line in lines[:-1]:
        found = list(ANNOTATION.finditer(line))
        assert found, line
        for m in found:
            expr, value = m.group(1), m.group(2)
            assert EXPR.match(expr), expr
            assert VALUE.match(value), value
            assert not value.endswith(".0") and not (("." in value) and value.endswith("0")), value
            assert safe_eval(expr) == Fraction(value), (expr, value)
            written = WRITTEN.match(line[m.end() :])
            assert written, line
            assert Fraction(written.group(0).replace(",", "")) == Fraction(value), line
            last_value = value
    assert lines[-1] == f"#### {last_value}"


@pytest.fixture(scope="module")
def rows2k() -> list[dict[str, str]]:
    return generate_rows(2_000, seed=0)


def test_same_seed_is_identical() -> None:
    assert generate_rows(50, seed=7) == generate_rows(50, seed=7)


def test_prefix_stable() -> None:
    assert generate_rows(5, 3) == generate_rows(10, 3)[:5]
    assert generate_rows(100)[37] == generate_rows(38)[37]


def test_different_seeds_differ() -> None:
    a, b = generate_rows(20, seed=0), generate_rows(20, seed=1)
    assert a != b
    assert sum(x["question"] != y["question"] for x, y in zip(a, b, strict=True)) >= 15


def test_global_random_state_untouched() -> None:
    random.seed(123)
    expected = random.random()
    random.seed(123)
    generate_rows(20)
    assert random.random() == expected


def test_zero_rows() -> None:
    assert generate_rows(0) == []


def test_negative_n_raises() -> None:
    with pytest.raises(ValueError):
        generate_rows(-1)


def test_safe_eval_rejects_names() -> None:
    assert safe_eval("2*(3+4)/-7") == -2
    with pytest.raises(ValueError):
        safe_eval("__import__('os')")


def test_all_rows_well_formed(rows2k: list[dict[str, str]]) -> None:
    for row in rows2k:
        _check_row(row)


@pytest.mark.parametrize("template", synthetic._TEMPLATES, ids=lambda t: t.__name__)
def test_each_template_well_formed(template: synthetic.Template) -> None:
    for i in range(200):
        rng = random.Random(f"{template.__name__}:{i}")
        work = synthetic._Work()
        question = template(rng, work)
        _check_row({"question": question, "answer": work.answer()})


def test_template_variety() -> None:
    assert len(synthetic._TEMPLATES) >= 12
    assert len({t.__name__ for t in synthetic._TEMPLATES}) == len(synthetic._TEMPLATES)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(min_value=-(2**40), max_value=2**40))
def test_any_seed_well_formed(seed: int) -> None:
    for row in generate_rows(20, seed=seed):
        _check_row(row)


def test_number_styles_present(rows2k: list[dict[str, str]]) -> None:
    def prose(row: dict[str, str]) -> str:
        return row["question"] + "\n" + ANNOTATION.sub("", row["answer"])

    assert sum(bool(THOUSANDS.search(prose(r))) for r in rows2k) > 0
    assert sum(bool(DECIMAL.search(prose(r))) for r in rows2k) > 0
    assert sum(bool(NEGATIVE.search(prose(r))) for r in rows2k) > 0
    assert sum("$" in r["question"] for r in rows2k) > 0
    finals = [r["answer"].rsplit("\n", 1)[1] for r in rows2k]
    assert sum("." in f for f in finals) > 0
    assert sum(f.startswith("#### -") for f in finals) > 0
    assert all("," not in f for f in finals)


def test_mostly_distinct_questions() -> None:
    rows = generate_rows(10_000, seed=0)
    assert len({r["question"] for r in rows}) > 9_500


def test_generate_splits() -> None:
    train, test = generate_splits(n_train=300, n_test=120, seed=5)
    assert len(train) == 300
    assert len(test) == 120
    assert train == generate_rows(300, seed=5)
    assert not {r["question"] for r in train} & {r["question"] for r in test}
    for row in train + test:
        _check_row(row)


def test_generate_splits_deterministic() -> None:
    assert generate_splits(40, 10, seed=2) == generate_splits(40, 10, seed=2)


def test_generate_splits_empty() -> None:
    assert generate_splits(0, 0) == ([], [])


def test_golden_row() -> None:
    row = generate_rows(1, seed=0)[0]
    assert row["question"] == (
        "Tara has 94 stamps. She keeps 6 for herself and shares the rest equally among 4 friends. "
        "How many stamps does each friend get?"
    )
    assert row["answer"] == (
        "She shares 94 - 6 = <<94-6=88>>88 stamps.\nEach friend gets 88 / 4 = <<88/4=22>>22 stamps.\n#### 22"
    )
