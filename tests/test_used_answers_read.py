"""A task that uses another's answers reads only the columns its items need, and gets the same items."""

import pandas as pd

from orchestration_assets import inputs
from orchestration_assets.core.enrichment import task_frame
from orchestration_assets.core.items import build_items
from resources.providers.base import TaskResult
from resources.warehouse import Warehouse, store

PARTITION = "batch-1.csv"
SAMPLE = {"string": "Order 1234", "number": 49.5, "integer": 3, "boolean": True}


def _output(task, i: int) -> dict | None:
    """A plausible answer of ``task`` for record ``i``; every fifth record's answer failed."""
    if i % 5 == 4:
        return None
    if task.type == "classify":
        label = task.labels[i % len(task.labels)]
        return {"label": label, "probabilities": {label: 0.8}, "reasons": [f"reason {i}"]}
    assert task.type == "extract", f"no sample answer for a {task.type} task"
    return {f: fs.values[i % len(fs.values)] if fs.values else (None if i % 3 == 0 else SAMPLE.get(fs.type, f"v{i}"))
            for f, fs in task.spec.fields.items()}


def _narrow(wh, family, task) -> pd.DataFrame:
    """What a task step reads of a task it uses: only the columns its items take."""
    return inputs.answers(wh, family, task.name, PARTITION, columns=task.item_source_columns())


def _answers(task, n: int) -> pd.DataFrame:
    results = [TaskResult(record_id=f"r{i}", task=task.name, output=_output(task, i),
                          confidence=None if i % 5 == 4 else 0.5 + i / (4 * n), provider="local", model_id="m",
                          model_version="local@1", prompt_hash="h", input_hash=f"x{i}",
                          error="timeout" if i % 5 == 4 else None) for i in range(n)]
    return task_frame(task, results)


def test_items_from_the_narrow_read_equal_those_from_the_whole_table(tmp_path, families):
    wh = Warehouse(url=f"sqlite:///{tmp_path / 'warehouse.db'}")
    seen = set()
    for family in families.values():
        for task in family.tasks.values():
            for name in task.spec.uses:
                used = family.tasks[name]
                store(wh, family.table(name), _answers(used, 40), PARTITION)
                # the records come in another order than the answers, and one has no answer at all
                records = pd.DataFrame({"record_id": [f"r{i}" for i in reversed(range(41))],
                                        "input_hash": [f"x{i}" for i in reversed(range(41))]})
                for f in family.record.fields:
                    if f not in records:
                        records[f] = "some text"
                whole = inputs.answers(wh, family, name, PARTITION)
                narrow = _narrow(wh, family, used)
                assert len(narrow.columns) < len(whole.columns) and len(narrow) == len(whole) == 40
                fields = list(family.record.fields)
                expected = build_items(task, records, fields, {}, {name: (used, whole)})
                got = build_items(task, records, fields, {}, {name: (used, narrow)})
                assert [i.fields for i in got] == [i.fields for i in expected]
                assert any(v is not None for i in got for k, v in i.fields.items() if k.startswith(name))
                seen.add(f"{family.name}.{task.name}")
    assert {"support_triage.priority", "refund_requests.reply"} <= seen, seen


def test_a_used_task_not_written_yet_reads_as_no_answers(tmp_path, families):
    family = families["support_triage"]
    wh = Warehouse(url=f"sqlite:///{tmp_path / 'warehouse.db'}")
    frame = _narrow(wh, family, family.tasks["category"])
    assert frame.empty and "record_id" in frame.columns
