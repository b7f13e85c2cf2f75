"""AI-output guardrails on a family's ``enriched_records``, re-verified independently of the enrichment code.

All are blocking: when one fails, ``routing_decisions`` does not run on the bad outputs, so
nothing of the batch is dispatched. Which checks exist follows from the family's tasks: labels
and confidences for classify, sentiment and extract tasks; PII and echoed prompt injection for
generated text (draft tasks); the failure-rate threshold for every family.
"""

import dagster as dg
import pandas as pd

from orchestration_assets.family import Family
from orchestration_assets.partitions import batches
from resources.warehouse import Warehouse

SAMPLE = 10
MAX_IDS = 900  # bound parameters of one query (SQLite allows 999 in old builds)


def _load(context: dg.AssetCheckExecutionContext, warehouse: Warehouse, family: Family, *columns: str) -> pd.DataFrame:
    """The partition's rows, only the columns a check reads (a whole row decodes every JSON answer)."""
    table = family.table("enriched_records")
    present = warehouse.columns(table)
    wanted = [c for c in dict.fromkeys(("record_id", *columns)) if c in present]
    return warehouse.read_table(table, partitions=[context.partition_key], columns=wanted)


def _load_rows(context: dg.AssetCheckExecutionContext, warehouse: Warehouse, family: Family, order: pd.Series,
               record_ids: set, *columns: str) -> pd.DataFrame:
    """:func:`_load` of only the given records, in the order of ``order`` (the partition's record ids)."""
    if len(record_ids) > MAX_IDS:  # most records wanted: one scan of the partition is cheaper
        df = _load(context, warehouse, family, *columns)
        return df[df["record_id"].isin(record_ids)]
    table = family.table("enriched_records")
    present = warehouse.columns(table)
    wanted = [c for c in dict.fromkeys(("record_id", *columns)) if c in present]
    df = warehouse.read_table(table, partitions=[context.partition_key], columns=wanted,
                              where_in=("record_id", sorted(record_ids)))
    position = df["record_id"].map({rid: i for i, rid in enumerate(order)})
    return df.iloc[position.argsort(kind="stable")]


def _sample(df: pd.DataFrame, cols: list[str]) -> dg.MetadataValue:
    return dg.MetadataValue.json(df[[c for c in cols if c in df.columns]].head(SAMPLE).astype(str).to_dict(orient="records"))


def allowed_values(family: Family) -> dict[str, set[str]]:
    """Column -> the values an answer may take (labels, sentiment, extracted enums)."""
    out: dict[str, set[str]] = {}
    for t in family.tasks.values():
        if t.type == "classify":
            out[t.name] = set(t.labels)
        elif t.type == "sentiment":
            out[t.name] = {"negative", "neutral", "positive"}
        elif t.type == "extract":
            out.update({f"{t.name}_{f}": set(fs.values) for f, fs in t.spec.fields.items() if fs.type == "enum"})
    return out


def guardrail_checks(family: Family) -> list[dg.AssetChecksDefinition]:
    asset = dg.AssetKey(family.key("enriched_records"))
    parts = batches(family)
    checks: list[dg.AssetChecksDefinition] = []
    allowed = allowed_values(family)
    confidences = [f"{t.name}_confidence" for t in family.tasks.values() if t.has_confidence]
    drafts = family.tasks_of("draft")

    if allowed:
        @dg.asset_check(asset=asset, blocking=True, partitions_def=parts, name="answers_in_allowed_sets",
                        description="Every enriched record's labels and enumerated fields are in their allowed sets: "
                                    + ", ".join(sorted(allowed)) + ".")
        def answers_in_allowed_sets(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> dg.AssetCheckResult:
            df = _load(context, warehouse, family, "status", *allowed)
            ok = df[df["status"] == "enriched"]
            bad_mask = pd.Series(False, index=ok.index)
            by_column = {}
            for col, values in allowed.items():
                column = ok[col] if col in ok else pd.Series(None, index=ok.index, dtype=object)
                # a label is always given for an enriched record; an extracted field may be absent
                col_bad = ~column.isin(values) if col in family.tasks else column.notna() & ~column.isin(values)
                by_column[col] = int(col_bad.sum())
                bad_mask |= col_bad
            bad = ok[bad_mask]
            return dg.AssetCheckResult(passed=bad.empty, metadata={
                "rows_checked": len(ok), "unexpected_count": len(bad), "by_column": dg.MetadataValue.json(by_column),
                "unexpected_sample": _sample(bad, ["record_id", *allowed])})

        checks.append(answers_in_allowed_sets)

    if confidences:
        @dg.asset_check(asset=asset, blocking=True, partitions_def=parts, name="confidences_in_unit_interval",
                        description="Every confidence of an enriched record is a probability in [0, 1].")
        def confidences_in_unit_interval(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> dg.AssetCheckResult:
            df = _load(context, warehouse, family, "status", *confidences)
            ok = df[df["status"] == "enriched"]
            bad_mask = pd.Series(False, index=ok.index)
            for col in confidences:
                conf = pd.to_numeric(ok[col], errors="coerce") if col in ok else pd.Series(float("nan"), index=ok.index)
                bad_mask |= conf.isna() | (conf < 0) | (conf > 1)
            bad = ok[bad_mask]
            return dg.AssetCheckResult(passed=bad.empty, metadata={
                "rows_checked": len(ok), "unexpected_count": len(bad),
                "unexpected_sample": _sample(bad, ["record_id", *confidences])})

        checks.append(confidences_in_unit_interval)

    if drafts:
        @dg.asset_check(asset=asset, blocking=True, partitions_def=parts, name="outputs_free_of_pii",
                        description="No stored generated text contains an e-mail address, phone number, card number or IBAN.")
        def outputs_free_of_pii(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> dg.AssetCheckResult:
            from resources.redaction import find_pii_many

            df = _load(context, warehouse, family, *(t.name for t in drafts))
            bad, checked = [], 0
            for t in drafts:
                column = df[t.name].tolist()
                checked += sum(isinstance(text, str) for text in column)
                for rid, hits in zip(df["record_id"], find_pii_many(column)):
                    if hits:
                        bad.append({"record_id": rid, "task": t.name, "pii_kinds": sorted({k for k, _ in hits})})
            return dg.AssetCheckResult(passed=not bad, metadata={
                "outputs_checked": checked, "outputs_with_pii": len(bad), "sample": dg.MetadataValue.json(bad[:SAMPLE])})

        @dg.asset_check(asset=asset, blocking=True, partitions_def=parts, name="outputs_do_not_echo_injection",
                        description="A generated text that repeats a prompt-injection phrase of its record is flagged, "
                                    "so it is never sent without a human.")
        def outputs_do_not_echo_injection(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> dg.AssetCheckResult:
            from orchestration_assets.core.guardrails import could_echo_injection, echoed_injection_phrases
            from orchestration_assets.core.items import texts

            outputs = _load(context, warehouse, family, *(t.name for t in drafts))
            # only a record whose output could repeat a phrase needs its text and flags read
            may_echo: dict[str, bool] = {}
            suspects = {rid for t in drafts for rid, text in zip(outputs["record_id"], outputs[t.name])
                        if isinstance(text, str) and may_echo.setdefault(text, could_echo_injection(text))}
            df = _load_rows(context, warehouse, family, outputs["record_id"], suspects, "guardrail_violations",
                            *(c for t in drafts for c in (t.name, *t.text_fields)))
            unflagged, echoing = [], 0
            for t in drafts:
                sources = texts(df, t.text_fields)
                for rid, text, source, found in zip(df["record_id"], df[t.name], sources, df["guardrail_violations"]):
                    phrases = echoed_injection_phrases(text or "", source)
                    if phrases:
                        echoing += 1
                        if f"{t.name}:injection_echo" not in (found or []):
                            unflagged.append({"record_id": rid, "task": t.name, "phrases": phrases})
            return dg.AssetCheckResult(passed=not unflagged, metadata={
                "rows_checked": len(outputs), "outputs_echoing_injection": echoing, "unflagged": len(unflagged),
                "sample": dg.MetadataValue.json(unflagged[:SAMPLE])})

        checks += [outputs_free_of_pii, outputs_do_not_echo_injection]

    limit = family.spec.guardrails.max_failure_rate

    @dg.asset_check(asset=asset, blocking=True, partitions_def=parts, name="failure_rate_below_threshold",
                    description=f"The share of records whose enrichment failed is at most {limit:.0%} "
                                "(the spec's guardrails.max_failure_rate).")
    def failure_rate_below_threshold(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> dg.AssetCheckResult:
        df = _load(context, warehouse, family, "status", "failure_reason")
        failed = df[df["status"] != "enriched"]
        rate = len(failed) / len(df) if len(df) else 0.0
        return dg.AssetCheckResult(
            passed=rate <= limit,
            description=None if rate <= limit else f"{len(failed)} of {len(df)} records failed ({rate:.1%} > {limit:.0%})",
            metadata={"failure_rate": float(rate), "max_failure_rate": float(limit), "failed": len(failed),
                      "rows": len(df), "sample": _sample(failed, ["record_id", "failure_reason"])})

    checks.append(failure_rate_below_threshold)
    return checks
