"""The support_triage family as the local-provider tests use it: labelled frames, items, trained models.

The lead's orchestration builds these from the family's files; the tests build them the same way
(text = the task's text fields joined by newlines; lookups joined under their alias with typed
columns; a used task's answers among the fields) so the provider is tested on what it will see.
Training happens once per test session (a temp model folder), shared by the test modules.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from resources.providers.base import Document, Item, content_hash

ROOT = Path(__file__).resolve().parent.parent
FAMILY_DIR = ROOT / "orchestration_assets" / "defs" / "support_triage"
DATA = FAMILY_DIR / "data"


@functools.cache
def family():
    from orchestration_assets.family import Family

    return Family.load(FAMILY_DIR)


@functools.cache
def accounts() -> dict[str, dict[str, Any]]:
    df = pd.read_csv(DATA / "crm_accounts.csv", dtype=str, keep_default_na=False)
    df["is_vip"] = df["is_vip"].str.lower() == "true"
    df["arr_usd"] = pd.to_numeric(df["arr_usd"])
    return df.set_index("account_id").to_dict(orient="index")


@functools.cache
def labelled() -> pd.DataFrame:
    return pd.read_csv(DATA / "labelled_tickets.csv", dtype=str, keep_default_na=False)


@functools.cache
def knowledge_base() -> pd.DataFrame:
    return pd.read_json(DATA / "knowledge_base.jsonl", lines=True)


def text_of(row: Mapping[str, Any], fields: Sequence[str] = ("subject", "body")) -> str:
    return "\n".join(str(row.get(f) or "") for f in fields).strip()


def fields_of(row: Mapping[str, Any]) -> dict[str, Any]:
    """A record's flat fields: its own, plus its CRM account under ``account.``."""
    out = {k: v for k, v in row.items() if k not in ("category", "priority")}
    for k, v in (accounts().get(row.get("account_id")) or {}).items():
        out[f"account.{k}"] = v
    return out


def labelled_frame(task_name: str, rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """The training frame contract for a classify task of the family: record_id, text, label, features."""
    task = family().tasks[task_name]
    rows = labelled() if rows is None else rows
    records = rows.to_dict(orient="records")
    fields = [fields_of(r) for r in records]
    frame = pd.DataFrame({
        "record_id": rows["ticket_id"].tolist(),
        "text": [text_of(r, task.text_fields) for r in records],
        "label": rows["category" if task_name == "category" else "priority"].tolist(),
    })
    for feat in task.spec.features:
        frame[feat] = [r.get(feat) if feat in r else f.get(feat) for r, f in zip(records, fields)]
    return frame


def items(rows: Sequence[Mapping[str, Any]], answers: Sequence[Mapping[str, Any]] | None = None,
          documents: Sequence[Sequence[Document]] | None = None, with_account: bool = True) -> list[Item]:
    out = []
    for i, r in enumerate(rows):
        f = fields_of(r) if with_account else {k: v for k, v in r.items() if k not in ("category", "priority")}
        if answers is not None:
            f.update(answers[i])
        text = text_of(r)
        out.append(Item(str(r["ticket_id"]), text, f, tuple(documents[i]) if documents else (),
                        content_hash(r["ticket_id"], text)))
    return out


@functools.cache
def trained():
    """(store, versions, {task: (training set, golden rows)}) for category and priority, trained once."""
    from resources.providers.local import LocalModelStore, prepare_training_set

    folder = tempfile.mkdtemp(prefix="local-models-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    store = LocalModelStore(model_dir=folder)
    versions, sets = {}, {}
    for name in ("category", "priority"):
        task = family().tasks[name]
        training, golden = prepare_training_set(task, labelled_frame(name))
        versions[name] = store.train(task, training).version
        sets[name] = (training, golden)
    return store, versions, sets


def provider():
    store, versions, _ = trained()
    return store.provider(versions, family().label_rules)
