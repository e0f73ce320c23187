"""Deterministic generator of MATH-format problems (problem/solution rows whose last line is 'The answer is
$\\boxed{...}$.'), the offline rows of the `math` task. Row i depends only on (seed, i); answers are exact."""

from __future__ import annotations

import random
from fractions import Fraction
from math import gcd

Row = dict[str, str]
_TEST_SALT = "test"


def _latex(value: Fraction) -> str:
    """An exact value as MATH writes answers: an integer, or a reduced fraction (sign in front)."""
    if value.denominator == 1:
        return str(value.numerator)
    sign = "-" if value < 0 else ""
    return f"{sign}\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"


def _arithmetic(rng: random.Random) -> Row:
    a, b, c = rng.randint(2, 19), rng.randint(2, 19), rng.randint(-40, 40)
    product = a * b
    total = product + c
    sign = "+" if c >= 0 else "-"
    return {
        "problem": f"Compute ${a} \\cdot {b} {sign} {abs(c)}$.",
        "solution": f"First, ${a} \\cdot {b} = {product}$. Then ${product} {sign} {abs(c)} = {total}$.\n"
        f"The answer is $\\boxed{{{total}}}$.",
    }


def _simplify(rng: random.Random) -> Row:
    q = rng.randint(2, 12)
    p = rng.choice([n for n in range(1, 3 * q) if gcd(n, q) == 1])
    k = rng.randint(2, 9)
    value = Fraction(p, q)
    return {
        "problem": f"Simplify $\\frac{{{p * k}}}{{{q * k}}}$.",
        "solution": f"Both {p * k} and {q * k} are divisible by {k}, so $\\frac{{{p * k}}}{{{q * k}}} = "
        f"{_latex(value)}$.\nThe answer is $\\boxed{{{_latex(value)}}}$.",
    }


def _linear(rng: random.Random) -> Row:
    a, b, c = rng.randint(2, 9), rng.randint(-20, 20), rng.randint(-30, 30)
    x = Fraction(c - b, a)
    sign = "+" if b >= 0 else "-"
    return {
        "problem": f"Solve for $x$: ${a}x {sign} {abs(b)} = {c}$.",
        "solution": f"Moving the constant gives ${a}x = {c - b}$, so $x = {_latex(x)}$.\n"
        f"The answer is $\\boxed{{{_latex(x)}}}$.",
    }


def _series(rng: random.Random) -> Row:
    n = rng.randint(5, 120)
    total = n * (n + 1) // 2
    return {
        "problem": f"What is the sum of the first ${n}$ positive integers?",
        "solution": f"The sum is $\\frac{{{n} \\cdot {n + 1}}}{{2}} = {total}$.\n"
        f"The answer is $\\boxed{{{total}}}$.",
    }


def _power(rng: random.Random) -> Row:
    base, exponent = rng.randint(2, 7), rng.randint(2, 5)
    value = base**exponent
    return {
        "problem": f"Evaluate ${base}^{{{exponent}}} - {base}$.",
        "solution": f"We have ${base}^{{{exponent}}} = {value}$, and ${value} - {base} = {value - base}$.\n"
        f"The answer is $\\boxed{{{value - base}}}$.",
    }


_TEMPLATES = (_arithmetic, _simplify, _linear, _series, _power)


def _row(key: str) -> Row:
    rng = random.Random(key)
    return _TEMPLATES[rng.randrange(len(_TEMPLATES))](rng)


def generate_rows(n: int, seed: int = 0) -> list[Row]:
    """n MATH-format rows; row i depends only on (seed, i)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return [_row(f"{seed}:{i}") for i in range(n)]


def generate_splits(n_train: int, n_test: int, seed: int = 0) -> tuple[list[Row], list[Row]]:
    """Train and test rows; no test problem appears in train (the problem space is small: a test row repeats a
    train problem often, and is then skipped)."""
    if n_test < 0:
        raise ValueError(f"n_test must be >= 0, got {n_test}")
    train = generate_rows(n_train, seed)
    seen = {row["problem"] for row in train}
    test: list[Row] = []
    i = 0
    while len(test) < n_test:
        row = _row(f"{_TEST_SALT}:{seed}:{i}")
        i += 1
        if row["problem"] not in seen:
            seen.add(row["problem"])
            test.append(row)
    return train, test
