"""The platform's guarantees, as functions that list what a family's run breaks (empty = kept).

Each takes what a run left behind (the warehouse, the Dagster instance, the run results, the
definitions) and returns readable problems, so the conformance tests assert an empty list and
``test_guarantees_fail.py`` shows each one reporting a deliberately broken family.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pandas as pd

from orchestration_assets.family import Family
from resources.warehouse import Warehouse

PROVENANCE = ("model_version", "prompt_version", "policy_version", "input_hash", "run_id")


def _table(wh: Warehouse, family: Family, asset: str, partition: str | None = None) -> pd.DataFrame:
    name = family.table(asset)
    if not wh.has_table(name):
        return pd.DataFrame()
    return wh.read_table(name, partitions=[partition] if partition else None)


def rows_accounted(wh: Warehouse, family: Family, partition: str, rows_in: int) -> list[str]:
    """rows in = valid + quarantined; valid = enriched + failed (with a reason); every enriched row decided."""
    raw, quarantined = _table(wh, family, "raw_records", partition), _table(wh, family, "quarantined_records", partition)
    enriched, decisions = _table(wh, family, "enriched_records", partition), _table(wh, family, "routing_decisions", partition)
    problems = []
    if len(raw) + len(quarantined) != rows_in:
        problems.append(f"{rows_in} rows in, but {len(raw)} valid + {len(quarantined)} quarantined")
    if len(quarantined) and quarantined[["source_row", "field", "reason"]].isna().any().any():
        problems.append("a quarantined row lacks its row number, field or reason")
    if set(enriched.get("record_id", [])) != set(raw.get("record_id", [])):
        problems.append(f"{len(raw)} valid records but {len(enriched)} enriched rows")
    if len(enriched):
        statuses = set(enriched["status"])
        if not statuses <= {"enriched", "failed"}:
            problems.append(f"unknown statuses {sorted(statuses - {'enriched', 'failed'})}")
        failed = enriched[enriched["status"] == "failed"]
        if failed["failure_reason"].isna().any():
            problems.append(f"{int(failed['failure_reason'].isna().sum())} failed records without a reason")
    if set(decisions.get("record_id", [])) != set(enriched.get("record_id", [])):
        problems.append(f"{len(enriched)} enriched records but {len(decisions)} routing decisions")
    return problems


@dataclass
class Snapshot:
    """What a re-run must not change: row counts, audit keys, deliveries, outbox files."""

    rows: dict[str, int]
    audit_keys: Counter
    delivered: int
    outbox_files: int
    duplicates: dict[str, int] = field(default_factory=dict)


def snapshot(wh: Warehouse, family: Family, partition: str, outbox: Path) -> Snapshot:
    from resources.audit import read_audit
    from resources.outbox import read_ledger

    rows, dupes = {}, {}
    for asset in ("raw_records", "quarantined_records", "enriched_records", "routing_decisions", "dispatches",
                  *family.tasks):
        df = _table(wh, family, asset, partition if asset != "dispatches" else None)
        rows[asset] = len(df)
        if "record_id" in df and asset != "quarantined_records":
            dupes[asset] = int(df["record_id"].duplicated().sum())
    audit = read_audit(wh, family=family.name)
    ledger = read_ledger(wh.engine, family=family.name)
    files = len(list(outbox.rglob("*.json"))) if outbox.exists() else 0
    return Snapshot(rows, Counter(audit["natural_key"]), int((ledger["status"] == "delivered").sum()), files, dupes)


def idempotent(before: Snapshot, after: Snapshot) -> list[str]:
    problems = []
    for table, n in before.rows.items():
        if after.rows.get(table) != n:
            problems.append(f"{table}: {n} rows before the re-run, {after.rows.get(table)} after")
    for table, n in after.duplicates.items():
        if n:
            problems.append(f"{table}: {n} duplicate record ids")
    added = sum((after.audit_keys - before.audit_keys).values())
    if added:
        problems.append(f"the re-run added {added} audit rows")
    if after.delivered != before.delivered or after.outbox_files != before.outbox_files:
        problems.append(f"the re-run dispatched again: {before.delivered} -> {after.delivered} deliveries, "
                        f"{before.outbox_files} -> {after.outbox_files} outbox files")
    return problems


def audit_provenance(wh: Warehouse, family: Family, partition: str, run_ids: set[str]) -> list[str]:
    """One routing_decision audit row per decision, each with model, prompt and policy version, input hash and run."""
    from resources.audit import read_audit

    decisions = _table(wh, family, "routing_decisions", partition)
    audit = read_audit(wh, family=family.name, partition=partition, event_type="routing_decision")
    problems = []
    per_record = audit.groupby("record_id").size()
    missing = set(decisions.get("record_id", [])) - set(per_record.index)
    if missing:
        problems.append(f"{len(missing)} decisions have no audit row, e.g. {sorted(missing)[:3]}")
    extra = per_record[per_record > 1]
    if len(extra):
        problems.append(f"{len(extra)} records have more than one routing audit row, e.g. {list(extra.index[:3])}")
    for col in PROVENANCE:
        empty = int(audit[col].isna().sum() + (audit[col].astype(str) == "").sum()) if col in audit else len(audit)
        if empty:
            problems.append(f"{empty} audit rows lack {col}")
    unknown = set(audit["run_id"].dropna()) - run_ids
    if unknown:
        problems.append(f"audit rows name runs that did not happen: {sorted(unknown)[:3]}")
    return problems


def _checks_on(defs: dg.Definitions, key: dg.AssetKey) -> list:
    graph = defs.resolve_asset_graph()
    return [graph.get_check_spec(k) for k in graph.asset_check_keys if k.asset_key == key]


def blocking_check_ran(defs: dg.Definitions, family: Family, result, asset: str, required: tuple[str, ...] = ()) -> list[str]:
    """``asset`` has blocking checks (``required`` among them), and each ran in ``result`` and passed."""
    from tests.workflow import check_results

    key = dg.AssetKey(family.key(asset))
    specs = [s for s in _checks_on(defs, key) if s.blocking]
    problems = [] if specs else [f"{key.to_user_string()} has no blocking check"]
    names = {s.name for s in specs}
    problems += [f"{key.to_user_string()} lacks the blocking check {r}" for r in required if r not in names]
    ran = check_results(result)
    for spec in specs:
        ev = ran.get((key.to_user_string(), spec.name))
        if ev is None:
            problems.append(f"{key.to_user_string()}: blocking check {spec.name} did not run")
        elif not ev.passed:
            problems.append(f"{key.to_user_string()}: blocking check {spec.name} failed: {ev.description}")
    return problems


def guardrails(defs: dg.Definitions, family: Family, result) -> list[str]:
    required = ["failure_rate_below_threshold", "llm_spend_within_budget"]
    if family.tasks_of("draft"):
        required += ["outputs_free_of_pii", "outputs_do_not_echo_injection"]
    if any(t.type in ("classify", "sentiment", "extract") for t in family.tasks.values()):
        required.append("answers_in_allowed_sets")
    return blocking_check_ran(defs, family, result, "enriched_records", tuple(required))


def no_secret(wh: Warehouse, instance, run_ids: set[str], secret: str, folders: list[Path]) -> list[str]:
    """The secret is in no warehouse table, no event (logs, metadata) of the runs and no written file."""
    import sqlalchemy as sa

    problems = []
    with wh.engine.connect() as conn:
        for table in sa.inspect(wh.engine).get_table_names():
            dump = pd.read_sql(sa.text(f'SELECT * FROM "{table}"'), conn).to_csv()
            if secret in dump:
                problems.append(f"table {table} holds the secret")
    for run_id in run_ids:
        for entry in instance.all_logs(run_id):
            if secret in json.dumps(entry.to_json() if hasattr(entry, "to_json") else str(entry), default=str):
                problems.append(f"an event of run {run_id[:8]} holds the secret ({entry.dagster_event_type})")
                break
    for folder in folders:
        for path in folder.rglob("*") if folder.exists() else []:
            if path.is_file() and secret in path.read_text(encoding="utf-8", errors="ignore"):
                problems.append(f"file {path.name} holds the secret")
    return problems


def kpis(wh: Warehouse, family: Family) -> list[str]:
    daily, decisions = _table(wh, family, "kpi_daily"), _table(wh, family, "routing_decisions")
    problems = []
    if daily.empty:
        problems.append("kpi_daily has no rows")
    elif int(daily["records"].sum()) != len(decisions):
        problems.append(f"kpi_daily counts {int(daily['records'].sum())} records, routing has {len(decisions)}")
    else:
        for col in ("automation_rate", "failure_rate", "cost_per_record"):
            if col not in daily or daily[col].isna().any():
                problems.append(f"kpi_daily lacks {col}")
    if _table(wh, family, "kpi_by_model_version").empty:
        problems.append("kpi_by_model_version has no rows")
    if not wh.has_table(family.table("kpi_review")):
        problems.append("kpi_review was never materialized")
    return problems
