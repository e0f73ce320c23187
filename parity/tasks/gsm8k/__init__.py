"""The GSM8K task pack: question/answer rows whose reference answers end '#### N' after reasoning lines with
<<expr=value>> calculator annotations (openai/gsm8k, 'main': 7,473 train and 1,319 test rows)."""

from __future__ import annotations

from parity.tasks import TASKS, Annotation, Task
from parity.tasks.gsm8k.synthetic import generate_splits

GSM8K = Task(
    name="gsm8k",
    description="grade-school math word problems; the reference answer ends '#### <number>'",
    columns={"input": "question", "output": "answer"},
    gold_regex=r"#### (-?[0-9.,]+)",
    answer_pattern=r"-?[$0-9][0-9.,]*",
    answer_placeholder="<N>",
    generate=generate_splits,
    train_rows=7473,
    test_rows=1319,
    annotation=Annotation("calculator annotations", r"<<.*?>>"),
)
TASKS.add(GSM8K.name, GSM8K)
