"""Task packs: what one benchmark's rows and answers look like, declared in one module per task and registered.
Synthetic rows, the gold rule, the answer format, annotation spans and the few-shot rule live here and nowhere else.

A task is data (lm-eval-harness style): regexes and names, plus a synthetic row generator. Adding one is a module
in this package that calls `TASKS.add(Task(...))`; the data, answer and consistency probes read it through
`task_of(recipe)`. A recipe names its task with `data.task` (None: no task, so no answer or gold claims).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from parity.errors import ParityError
from parity.registries import Registry

Rows = list[dict[str, Any]]
Generator = Callable[[int, int, int], tuple[Rows, Rows]]


@dataclass(frozen=True)
class Annotation:
    """Spans of reference completions the data probe measures the token share of (e.g. calculator calls)."""

    name: str
    """What the spans are, in words ('calculator annotations')."""
    pattern: str


@dataclass(frozen=True)
class Task:
    """One benchmark: its rows' columns, how its gold answer and answer format are read, its synthetic rows."""

    name: str
    description: str
    columns: dict[str, str]
    """Column map of its rows onto the `input_output` row format (e.g. input=question, output=answer)."""
    gold_regex: str
    """Reads the gold answer from a row's reference completion (first match, first group)."""
    answer_pattern: str
    """The part of an answer's last line that varies by row; replaced by `answer_placeholder` it gives the format."""
    answer_placeholder: str
    generate: Generator
    """(train rows, test rows, seed) -> deterministic synthetic (train, test) rows in the task's columns."""
    train_rows: int
    """Synthetic train rows by default (the benchmark's own count)."""
    test_rows: int
    annotation: Annotation | None = None
    fewshot_rule: str = "shots are the benchmark's reference completions, unprocessed"
    """What a few-shot prompt shows as answers (the consistency probe compares their format with training)."""

    @cached_property
    def _answer(self) -> re.Pattern[str]:
        return re.compile(self.answer_pattern)

    @cached_property
    def annotation_regex(self) -> re.Pattern[str] | None:
        return re.compile(self.annotation.pattern) if self.annotation else None

    def answer_format(self, completion: str) -> str:
        """The last line of a completion with its varying answer replaced, e.g. '#### <N>'."""
        last = completion.rstrip().rsplit("\n", 1)[-1]
        return self._answer.sub(lambda _: self.answer_placeholder, last)

    def gold(self, reference: str, regex: str | None = None) -> str | None:
        """The gold answer in a reference completion (`regex` overrides the task's rule)."""
        match = re.search(regex or self.gold_regex, reference)
        return match.group(1) if match else None

    def synthetic(self, train: int | None, test: int | None, seed: int) -> tuple[Rows, Rows]:
        """Synthetic rows: the benchmark's row counts by default, test rows in proportion to train rows."""
        n_train = self.train_rows if train is None else train
        n_test = test if test is not None else max(1, round(n_train * self.test_rows / self.train_rows))
        return self.generate(n_train, n_test, seed)


TASKS: Registry[Task] = Registry("task")


def load_tasks() -> Registry[Task]:
    """Import every module in parity/tasks so each registers its task."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return TASKS


def get_task(name: str | None) -> Task | None:
    """The registered task `name` (None: no task); an unknown name is one ParityError naming the known ones."""
    if name is None:
        return None
    tasks = load_tasks()
    if name not in tasks:
        raise ParityError(f"unknown task '{name}' (known: {', '.join(sorted(tasks.names()))})")
    return tasks.get(name)


def task_of(recipe: Any) -> Task | None:
    """The task pack a recipe names (data.task), None when it names none."""
    return get_task(recipe.data.task)


def gold_rule(recipe: Any) -> str | None:
    """The regex reading a gold answer for the recipe: its own eval.gold_regex, else its task's rule (None: none)."""
    if recipe.eval.gold_regex:
        return recipe.eval.gold_regex
    task = task_of(recipe)
    return task.gold_regex if task else None


def gold_answer(recipe: Any, reference: str) -> str | None:
    """The gold answer in a reference completion by the recipe's gold rule (None: no rule, or no match)."""
    rule = gold_rule(recipe)
    if rule is None:
        return None
    match = re.search(rule, reference)
    return match.group(1) if match else None
