"""The MATH task pack: problem/solution rows whose solutions end with the answer in \\boxed{...}
(hendrycks MATH: 7,500 train and 5,000 test rows); answers are LaTeX, compared as strings unless both are numbers."""

from __future__ import annotations

from parity.tasks import TASKS, Task
from parity.tasks.math.synthetic import generate_splits

BOXED = r"\\boxed\{((?:[^{}]|\{(?:[^{}]|\{[^{}]*\})*\})*)\}"
"""\\boxed{...} with up to two levels of nested braces inside (\\frac{a}{b}, \\sqrt{\\frac{1}{2}}); group 1 is the answer."""

ANSWER = r"(?<=\\boxed\{)(?:[^{}]|\{(?:[^{}]|\{[^{}]*\})*\})*(?=\})|-?[0-9][0-9.,]*"
"""What varies in an answer line: the content of a \\boxed{...}, else a number ('Final answer: 42')."""

MATH = Task(
    name="math",
    description="competition mathematics; the solution ends with its answer in \\boxed{...}",
    columns={"input": "problem", "output": "solution"},
    gold_regex=BOXED,
    answer_pattern=ANSWER,
    answer_placeholder="<A>",
    generate=generate_splits,
    train_rows=7500,
    test_rows=5000,
)
TASKS.add(MATH.name, MATH)
