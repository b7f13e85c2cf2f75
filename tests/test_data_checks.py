"""Great Expectations data checks built from a family's spec: they pass on the bundled data and fail on bad tables.

Record checks validate the partition of ``raw_records`` a run touches; lookup checks validate each
context lookup. The bad tables are written to the warehouse directly, as a faulty manual load
would (ingestion itself quarantines such rows, so the checks are the second line of defence).
"""

from __future__ import annotations

import dagster as dg
import pytest

from checks.data_quality import data_quality_checks, lookup_checks, record_checks
from orchestration_assets.core.lookups import read_lookup
from orchestration_assets.core.records import parse_file
from orchestration_assets.loading import family_definitions
from orchestration_assets.partitions import batches
from tests.workflow import copy_batch, inbox_of, sample_files, temp_resources

pytestmark = pytest.mark.filterwarnings("ignore")

ST = "support_triage"


@pytest.fixture(scope="module")
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def evaluations(result) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    return {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}


def failed(result) -> set[str]:
    return {name for (_, name), e in evaluations(result).items() if not e.passed}


def rows_ok(result, family) -> int:
    key = dg.AssetKey(family.key("raw_records"))
    return next(e.materialization.metadata["rows_ok"].value for e in result.get_asset_materialization_events()
                if e.asset_key == key)


@pytest.mark.parametrize("name", ["support_triage", "it_service_desk", "refund_requests"])
def test_the_bundled_data_passes_every_data_check_of_the_family(families, name, tmp_path, model_dir, instance):
    family = families[name]
    resources = temp_resources(tmp_path, model_dir)
    batch = copy_batch(sample_files(family)[0], inbox_of(family, resources), n=150)
    instance.add_dynamic_partitions(family.partitions_name, [batch.name])
    result = family_definitions([family], resources).resolve_job_def(family.job_name("ingest")).execute_in_process(
        partition_key=batch.name, instance=instance)
    assert result.success
    evals = evaluations(result)
    expected = {(spec.asset_key.to_user_string(), spec.name) for c in data_quality_checks(family) for spec in c.check_specs}
    assert set(evals) == expected
    assert {k: e.description for k, e in evals.items() if not e.passed} == {}  # malformed rows were quarantined
    assert len(expected) == len(record_checks(family)) + sum(len(lookup_checks(family, n)) for n in family.spec.context)
    ids = evals[(f"{name}/raw_records", "record_ids_unique_and_present")]
    assert ids.partition == batch.name and ids.metadata["rows_validated"].value == rows_ok(result, family) > 0
    blocking = {s.name for c in data_quality_checks(family) for s in c.check_specs if s.blocking}
    assert blocking == {"record_ids_unique_and_present"}
    for lookup in family.spec.context:
        assert evals[(f"{name}/{lookup}", "has_min_rows")].partition is None


# ---- bad record tables ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checks_env(families, tmp_path_factory, model_dir, instance):
    """support_triage with a good and two bad raw_records partitions, and a job running the checks
    (as "Execute checks" on one partition) together with a task that reads the records."""
    family = families[ST]
    resources = temp_resources(tmp_path_factory.mktemp("checks"), model_dir)
    records = parse_file(sample_files(family)[0], family.record).records.head(12).reset_index(drop=True)
    wh = resources["warehouse"]
    wh.replace_partition(family.table("raw_records"), records, "good.csv")
    dupes = records.copy()
    dupes.loc[3, "record_id"] = dupes.loc[2, "record_id"]  # row 4 repeats row 3's id
    dupes.loc[5, "record_id"] = None  # row 6 has none
    wh.replace_partition(family.table("raw_records"), dupes, "dupes.csv")
    odd = records.copy()
    odd.loc[1, "channel"] = "fax"
    odd.loc[2, "channel"] = "carrier-pigeon"
    odd.loc[4, "body"] = "Call"  # 4 characters: the spec wants at least 5
    wh.replace_partition(family.table("raw_records"), odd, "odd.csv")
    raw = dg.AssetKey(family.key("raw_records"))
    job = dg.define_asset_job("raw_record_checks", partitions_def=batches(family),
                              selection=dg.AssetSelection.checks_for_assets(raw)
                              | dg.AssetSelection.assets(dg.AssetKey(family.key("sentiment"))))
    defs = dg.Definitions.merge(family_definitions([family], resources), dg.Definitions(jobs=[job]))
    instance.add_dynamic_partitions(family.partitions_name, ["good.csv", "dupes.csv", "odd.csv"])

    def run(partition: str):
        return defs.resolve_job_def("raw_record_checks").execute_in_process(
            partition_key=partition, instance=instance, raise_on_error=False)

    return family, records, run


def sentiment_ran(result, family) -> bool:
    return dg.AssetKey(family.key("sentiment")) in {e.asset_key for e in result.get_asset_materialization_events()}


def test_clean_records_pass_and_the_task_downstream_runs(checks_env):
    family, _, run = checks_env
    result = run("good.csv")
    assert result.success and failed(result) == set() and sentiment_ran(result, family)


def test_a_duplicate_or_missing_id_fails_the_blocking_check_and_nothing_downstream_runs(checks_env):
    family, records, run = checks_env
    result = run("dupes.csv")
    assert not result.success and failed(result) == {"record_ids_unique_and_present"}
    assert not sentiment_ran(result, family)  # the batch is not enriched, paid for or dispatched twice
    ids = evaluations(result)[(f"{ST}/raw_records", "record_ids_unique_and_present")]
    assert ids.severity == dg.AssetCheckSeverity.ERROR and ids.partition == "dupes.csv"
    md = {k: v.value for k, v in ids.metadata.items()}
    assert md["failing_expectations"] == ("expect_column_values_to_not_be_null(column='record_id'); "
                                          "expect_column_values_to_be_unique(column='record_id')")
    assert md["unexpected_count"] == 3  # one missing, two sharing an id
    assert md["unexpected_sample"] == [None, records.loc[2, "record_id"]]
    rows = [r["source_row"] for r in md["failing_rows_sample"]]
    assert sorted(rows) == sorted(records.loc[[2, 3, 5], "source_row"].tolist())
    assert md["rows_validated"] == 12 and md["partition"] == "dupes.csv"
    assert md["warehouse_table"] == family.table("raw_records")
    assert "2 of 2 expectation(s) failed on 12 rows" in ids.description


def test_values_outside_the_spec_warn_with_text_masked_in_metadata(checks_env):
    family, records, run = checks_env
    result = run("odd.csv")
    assert result.success and sentiment_ran(result, family)  # a warning does not block
    assert failed(result) == {"channel_in_allowed_set", "body_length_within_bounds"}
    evals = evaluations(result)
    channel = evals[(f"{ST}/raw_records", "channel_in_allowed_set")]
    assert channel.severity == dg.AssetCheckSeverity.WARN
    assert sorted(channel.metadata["unexpected_sample"].value) == ["carrier-pigeon", "fax"]
    assert {r["record_id"] for r in channel.metadata["failing_rows_sample"].value} == set(records.loc[[1, 2], "record_id"])
    body = evals[(f"{ST}/raw_records", "body_length_within_bounds")]
    assert body.severity == dg.AssetCheckSeverity.WARN
    assert body.metadata["unexpected_sample"].value == ["<4 chars>"]  # record text stays out of metadata
    assert "Call" not in body.metadata["expectations"].value and "<4 chars>" in body.metadata["expectations"].value


# ---- bad lookups -------------------------------------------------------------------------------
def test_bad_lookup_tables_fail_the_checks_naming_keys_values_and_row_counts(families, tmp_path, model_dir, instance):
    family = families[ST]
    resources = temp_resources(tmp_path, model_dir)
    wh = resources["warehouse"]
    bundled = {n: read_lookup(n, lk, family.root) for n, lk in family.spec.context.items()}
    accounts = bundled["crm_accounts"].head(10).copy()
    accounts.loc[1, "account_id"] = accounts.loc[0, "account_id"]  # a duplicate key fans out joined records
    accounts.loc[2, "tier"] = "platinum"
    accounts.loc[3, "arr_usd"] = -5.0  # below min: 0
    catalog = bundled["product_catalog"].head(5).copy()
    catalog.loc[0, "price_usd"] = 0.0  # strict_min: a price must be above 0
    articles = bundled["knowledge_base"].head(19).copy()  # min_rows: 20
    articles.loc[4, "body"] = "See above."
    for name, df in (("crm_accounts", accounts), ("product_catalog", catalog), ("knowledge_base", articles)):
        wh.replace_table(family.table(name), df)
    keys = [dg.AssetKey(family.key(n)) for n in family.spec.context]
    job = dg.define_asset_job("lookup_checks", selection=dg.AssetSelection.checks_for_assets(*keys))
    defs = dg.Definitions.merge(family_definitions([family], resources), dg.Definitions(jobs=[job]))
    result = defs.resolve_job_def("lookup_checks").execute_in_process(instance=instance, raise_on_error=False)
    evals = evaluations(result)
    bad = {k: e for k, e in evals.items() if not e.passed}
    assert set(bad) == {(f"{ST}/crm_accounts", "account_id_unique_and_present"), (f"{ST}/crm_accounts", "tier_valid"),
                        (f"{ST}/crm_accounts", "arr_usd_valid"), (f"{ST}/product_catalog", "price_usd_valid"),
                        (f"{ST}/knowledge_base", "has_min_rows"), (f"{ST}/knowledge_base", "body_valid")}
    sample = lambda asset, check: bad[(f"{ST}/{asset}", check)].metadata["unexpected_sample"].value  # noqa: E731
    assert sample("crm_accounts", "account_id_unique_and_present") == [accounts.loc[0, "account_id"]]
    assert sample("crm_accounts", "tier_valid") == ["platinum"]
    assert sample("crm_accounts", "arr_usd_valid") == [-5.0]
    assert sample("product_catalog", "price_usd_valid") == [0.0]
    rows = bad[(f"{ST}/knowledge_base", "has_min_rows")]
    assert "expect_table_row_count_to_be_between(min_value=20): observed 19" in rows.description
    body = bad[(f"{ST}/knowledge_base", "body_valid")].metadata["failing_rows_sample"].value
    assert body == [{"article_id": articles.loc[4, "article_id"]}]
    assert all(e.partition is None for e in evals.values())
    assert evals[(f"{ST}/crm_accounts", "has_min_rows")].passed  # 10 rows, at least 1 expected
