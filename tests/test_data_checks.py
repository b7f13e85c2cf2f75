"""Great Expectations data checks: the plain validation logic, then the Dagster wiring."""

import shutil
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from checks.data_quality import (
    CRM_ACCOUNT_CHECKS,
    KNOWLEDGE_BASE_CHECKS,
    PRODUCT_CATALOG_CHECKS,
    RAW_TICKET_CHECKS,
    RAW_TICKET_COLUMNS,
    data_quality_checks,
    expect,
    run_data_checks,
    timestamps_as_text,
    validate_dataframe,
)
from orchestration_assets.core.tickets import BODY_MAX_CHARS

REPO = Path(__file__).resolve().parent.parent
SAMPLE_DIR = REPO / "orchestration_assets" / "sample_data"
ID_COLS = ("ticket_id", "source_row")


def good_tickets(n: int = 4) -> pd.DataFrame:
    rows = []
    for i in range(1, n + 1):
        rows.append(
            {
                "ticket_id": f"T-{i:04d}",
                "account_id": f"ACC-{i:03d}",
                "customer_email": f"user{i}@example.com",
                "created_at": pd.Timestamp("2026-11-23T08:00:00Z") + pd.Timedelta(minutes=i),
                "channel": ["email", "chat", "phone", "web"][i % 4],
                "priority": "medium",
                "category": "billing",
                "subject": f"Invoice question {i}",
                "body": f"Hello, my invoice number {i} shows the wrong amount, please fix it.",
                "source_file": "batch-2026-11-23.csv",
                "source_row": i,
                "input_hash": f"h{i}",
                "ingested_at": pd.Timestamp("2026-11-23T09:00:00Z"),
            }
        )
    return pd.DataFrame(rows)


def check_tickets(df: pd.DataFrame):
    return run_data_checks(timestamps_as_text(df, "created_at"), RAW_TICKET_CHECKS, id_columns=ID_COLS)


def failing(summaries) -> set[str]:
    return {name for name, s in summaries.items() if not s.success}


# ---- plain functions -------------------------------------------------------------------------


def test_clean_ticket_batch_passes_every_check():
    summaries = check_tickets(good_tickets())
    assert set(summaries) == {c.name for c in RAW_TICKET_CHECKS}
    assert failing(summaries) == set()
    assert all(s.rows == 4 for s in summaries.values())


def test_duplicate_and_missing_ticket_ids_fail_only_the_id_check_and_name_the_rows():
    df = good_tickets()
    df.loc[2, "ticket_id"] = "T-0002"  # row 3 repeats row 2's id
    df.loc[3, "ticket_id"] = None  # row 4 has no id
    summaries = check_tickets(df)

    assert failing(summaries) == {"ticket_ids_unique_and_present"}
    ids = summaries["ticket_ids_unique_and_present"]
    nulls = ids.outcome("expect_column_values_to_not_be_null", "ticket_id")
    assert (nulls.success, nulls.unexpected_count) == (False, 1)
    assert nulls.sample_rows == ({"source_row": 4},)
    dupes = ids.outcome("expect_column_values_to_be_unique", "ticket_id")
    assert (dupes.success, dupes.unexpected_count) == (False, 2)
    assert dupes.sample_unexpected == ("T-0002",)
    assert [r["source_row"] for r in dupes.sample_rows] == [2, 3]
    assert ids.unexpected_count == 3


def test_channel_outside_allowed_set_is_reported_with_its_value():
    df = good_tickets()
    df.loc[1, "channel"] = "fax"
    df.loc[2, "channel"] = "carrier-pigeon"
    summaries = check_tickets(df)

    assert failing(summaries) == {"channels_in_allowed_set"}
    s = summaries["channels_in_allowed_set"]
    assert s.unexpected_count == 2
    assert sorted(s.sample_unexpected) == ["carrier-pigeon", "fax"]
    assert {r["ticket_id"] for o in s.failed for r in o.sample_rows} == {"T-0002", "T-0003"}


def test_unparseable_and_missing_timestamps_fail_created_at_check():
    df = good_tickets().astype({"created_at": object})
    df.loc[0, "created_at"] = "2026-02-31T10:00:00Z"  # no such day
    df.loc[1, "created_at"] = "yesterday-ish"
    df.loc[2, "created_at"] = pd.NaT  # what the warehouse returns for a value that did not parse
    summaries = check_tickets(df)

    assert failing(summaries) == {"created_at_parseable"}
    s = summaries["created_at_parseable"]
    parse = s.outcome("expect_column_values_to_be_dateutil_parseable", "created_at")
    assert parse.unexpected_count == 2
    assert sorted(parse.sample_unexpected) == ["2026-02-31T10:00:00Z", "yesterday-ish"]
    nulls = s.outcome("expect_column_values_to_not_be_null", "created_at")
    assert nulls.unexpected_count == 1
    assert nulls.sample_rows == ({"ticket_id": "T-0003", "source_row": 3},)


def test_body_length_bounds_are_inclusive_and_violations_counted():
    df = good_tickets()
    df.loc[0, "body"] = "hi"  # too short
    df.loc[1, "body"] = "x" * (BODY_MAX_CHARS + 1)  # too long
    df.loc[2, "body"] = "x" * BODY_MAX_CHARS  # exactly the maximum: fine
    s = check_tickets(df)["body_lengths_within_bounds"]

    lengths = s.outcome("expect_column_value_lengths_to_be_between", "body")
    assert (lengths.success, lengths.unexpected_count) == (False, 2)
    assert [r["ticket_id"] for r in lengths.sample_rows] == ["T-0001", "T-0002"]
    assert s.sample_unexpected[0] == "hi"
    assert len(s.sample_unexpected[1]) <= 80  # long values are shortened for display


def test_missing_columns_fail_the_schema_check_and_checks_on_them_report_an_error():
    df = good_tickets().drop(columns=["channel", "input_hash"])
    summaries = check_tickets(df)

    schema = summaries["columns_match_ticket_schema"]
    assert not schema.success
    assert sorted(schema.sample_unexpected) == ["channel", "input_hash"]
    assert schema.unexpected_count == 2
    channel = summaries["channels_in_allowed_set"]
    assert not channel.success
    assert 'column "channel"' in channel.failed[0].error  # not silently passed
    assert failing(summaries) == {"columns_match_ticket_schema", "channels_in_allowed_set"}


def test_empty_batch_passes_row_level_checks():
    summaries = check_tickets(good_tickets().iloc[0:0])
    assert failing(summaries) == set()
    assert summaries["ticket_ids_unique_and_present"].rows == 0


def test_crm_accounts_checks():
    accounts = pd.DataFrame(
        {
            "account_id": ["A1", "A2", "A2", None],
            "tier": ["pro", "enterprise", "platinum", "free"],
            "arr_usd": [1200.0, 90000.0, -5.0, 0.0],
        }
    )
    summaries = run_data_checks(accounts, CRM_ACCOUNT_CHECKS, id_columns=("account_id",))

    assert failing(summaries) == {"account_ids_unique_and_present", "tiers_in_allowed_set", "arr_non_negative"}
    assert summaries["account_ids_unique_and_present"].sample_unexpected == [None, "A2"]
    assert summaries["tiers_in_allowed_set"].sample_unexpected == ["platinum"]
    arr = summaries["arr_non_negative"]
    assert arr.sample_unexpected == [-5.0]
    assert arr.unexpected_count == 1  # 0.0 is allowed

    fixed = accounts.assign(account_id=["A1", "A2", "A3", "A4"], tier=["pro", "enterprise", "business", "free"], arr_usd=[1.0, 2.0, 0.0, 3.0])
    assert failing(run_data_checks(fixed, CRM_ACCOUNT_CHECKS)) == set()


def test_product_prices_must_be_strictly_positive_and_skus_unique():
    products = pd.DataFrame({"sku": ["S1", "S2", "S2"], "price_usd": [10.0, 0.0, 5.0]})
    summaries = run_data_checks(products, PRODUCT_CATALOG_CHECKS, id_columns=("sku",))

    assert failing(summaries) == {"skus_unique_and_present", "prices_positive"}
    assert summaries["prices_positive"].sample_unexpected == [0.0]
    assert summaries["skus_unique_and_present"].sample_unexpected == ["S2"]


def test_knowledge_base_needs_twenty_articles_with_bodies():
    kb = pd.DataFrame(
        {"article_id": [f"KB-{i}" for i in range(19)], "body": ["How to reset your password."] * 18 + [""]}
    )
    summaries = run_data_checks(kb, KNOWLEDGE_BASE_CHECKS, id_columns=("article_id",))

    assert failing(summaries) == {"has_min_article_count", "article_bodies_non_empty"}
    count = summaries["has_min_article_count"].outcome("expect_table_row_count_to_be_between")
    assert count.observed_value == 19
    bodies = summaries["article_bodies_non_empty"].outcome("expect_column_value_lengths_to_be_between", "body")
    assert bodies.sample_rows == ({"article_id": "KB-18"},)

    kb20 = pd.concat([kb, kb.iloc[[0]].assign(article_id="KB-19")], ignore_index=True)
    kb20.loc[18, "body"] = "Billing cycles explained."
    assert failing(run_data_checks(kb20, KNOWLEDGE_BASE_CHECKS)) == set()


def test_validate_dataframe_keeps_expectation_order_and_is_fast_after_import():
    df = pd.DataFrame({"a": [1, 2, 3]})
    exps = [expect("expect_column_values_to_be_between", column="a", min_value=2), expect("expect_column_to_exist", column="b")]
    validate_dataframe(df, exps)  # first call pays the import
    start = time.perf_counter()
    summary = validate_dataframe(df, exps)
    assert time.perf_counter() - start < 1.0
    assert [o.expectation for o in summary.outcomes] == exps
    assert [o.success for o in summary.outcomes] == [False, False]
    assert summary.outcomes[0].sample_unexpected == (1,)


def test_raw_ticket_schema_matches_what_ingestion_writes():
    from orchestration_assets.core.parsing import TICKET_COLUMNS

    assert set(TICKET_COLUMNS) <= set(RAW_TICKET_COLUMNS)
    assert set(RAW_TICKET_COLUMNS) - set(TICKET_COLUMNS) == {"ingested_at"}


# ---- Dagster wiring: checks run in the ingestion run, on the partition it wrote --------------

BATCH = "batch-2026-11-23.csv"


def ingestion_resources(data_dir: Path) -> dict:
    from resources.sources import ContextSources, TicketInbox
    from resources.warehouse import Warehouse, WarehouseIOManager

    warehouse = Warehouse(url=f"sqlite:///{data_dir / 'warehouse.db'}")
    return {
        "warehouse": warehouse,
        "io_manager": WarehouseIOManager(warehouse=warehouse),
        "inbox": TicketInbox(path=str(data_dir / "inbox")),
        "sources": ContextSources(),  # the bundled CRM, catalog and knowledge base
    }


def evaluations(result) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    return {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}


@pytest.mark.filterwarnings("ignore")
def test_ingestion_run_evaluates_every_data_check_on_the_batch_it_wrote(data_dir, instance):
    from orchestration_assets.ingestion import context_assets, ticket_batch, ticket_batches

    inbox = data_dir / "inbox"
    inbox.mkdir()
    shutil.copy2(SAMPLE_DIR / "inbox" / BATCH, inbox / BATCH)
    instance.add_dynamic_partitions(ticket_batches.name, [BATCH])

    result = dg.materialize(
        [ticket_batch, *context_assets, *data_quality_checks],
        resources=ingestion_resources(data_dir),
        partition_key=BATCH,
        instance=instance,
    )

    assert result.success
    evals = evaluations(result)
    expected = {(spec.asset_key.to_user_string(), spec.name) for c in data_quality_checks for spec in c.check_specs}
    assert set(evals) == expected and len(expected) == 14
    failed = {k: e.description for k, e in evals.items() if not e.passed}
    assert failed == {}  # the bundled sample data is clean once malformed rows are quarantined

    rows_ok = next(
        e.materialization.metadata["rows_ok"].value
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("raw_tickets")
    )
    ids = evals[("raw_tickets", "ticket_ids_unique_and_present")]
    assert ids.partition == BATCH  # a per-partition check result
    assert ids.metadata["rows_validated"].value == rows_ok
    assert ids.metadata["unexpected_count"].value == 0
    assert evals[("knowledge_base", "has_min_article_count")].metadata["rows_validated"].value >= 20
    assert evals[("crm_accounts", "account_ids_unique_and_present")].partition is None
    blocking = {spec.name for c in data_quality_checks for spec in c.check_specs if spec.blocking}
    assert "ticket_ids_unique_and_present" in blocking


@pytest.mark.filterwarnings("ignore")
def test_checks_read_only_their_partition_and_report_bad_rows_readably(data_dir, instance):
    from checks.data_quality import raw_tickets_data_checks
    from orchestration_assets.ingestion import ticket_batch, ticket_batches

    resources = ingestion_resources(data_dir)
    warehouse = resources["warehouse"]
    good = good_tickets()
    bad = good.copy()
    bad.loc[1, "ticket_id"] = "T-0001"  # a duplicate id, as a faulty manual load would write it
    bad.loc[2, "body"] = "Call"  # too short: 4 characters
    warehouse.replace_partition("raw_tickets", good, "batch-good.csv")
    warehouse.replace_partition("raw_tickets", bad, "batch-bad.csv")
    instance.add_dynamic_partitions(ticket_batches.name, ["batch-good.csv", "batch-bad.csv"])

    # what "Execute checks" on one partition in the UI runs: the checks alone, not the asset
    checks_job = dg.define_asset_job(
        "raw_ticket_checks",
        selection=dg.AssetSelection.checks_for_assets(ticket_batch),
        partitions_def=ticket_batches,
    )
    defs = dg.Definitions(
        assets=[ticket_batch], asset_checks=[raw_tickets_data_checks], jobs=[checks_job], resources=resources
    )

    def run_checks(key: str):
        return defs.resolve_job_def("raw_ticket_checks").execute_in_process(
            tags={"dagster/partition": key}, instance=instance, raise_on_error=False
        )

    clean = run_checks("batch-good.csv")
    assert clean.success
    assert all(e.passed for e in clean.get_asset_check_evaluations())

    dirty = run_checks("batch-bad.csv")
    # the blocking id check failed with ERROR severity: the run fails, so nothing downstream runs
    assert not dirty.success
    failure = next(e for e in dirty.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert "ticket_ids_unique_and_present" in failure.step_failure_data.error.message
    evals = {e.check_name: e for e in dirty.get_asset_check_evaluations()}
    assert {n for n, e in evals.items() if not e.passed} == {"ticket_ids_unique_and_present", "body_lengths_within_bounds"}

    ids = evals["ticket_ids_unique_and_present"]
    assert ids.severity == dg.AssetCheckSeverity.ERROR and ids.partition == "batch-bad.csv"
    md = {k: v.value for k, v in ids.metadata.items()}
    assert md["failing_expectations"] == "expect_column_values_to_be_unique(column='ticket_id')"
    assert md["unexpected_count"] == 2
    assert md["unexpected_sample"] == ["T-0001"]
    assert md["failing_rows_sample"] == [{"source_row": 1}, {"source_row": 2}]
    assert md["rows_validated"] == 4 and md["partition"] == "batch-bad.csv"
    assert "1 of 2 expectation(s) failed on 4 rows" in ids.description

    body = evals["body_lengths_within_bounds"]
    assert body.severity == dg.AssetCheckSeverity.WARN
    assert body.metadata["unexpected_sample"].value == ["<4 chars>"]  # ticket text stays out of metadata
    assert "Call" not in body.metadata["expectations"].value
