"""The PostgreSQL path end to end, on a real server (:mod:`tests.postgres_server`).

The warehouse's database guarantees (append-only history, one champion, compare-and-set
promotion), the conformance suite's guarantees for every family, and a whole family run with the
Dagster instance storage (runs, events, schedules) on PostgreSQL too (dagster-postgres).
"""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
import yaml

from resources.audit import AUDIT_TABLE, read_audit, record_event
from resources.registry import ModelRegistry, PromotionConflict
from resources.registry.schema import HISTORY_TABLE
from resources.warehouse import Warehouse
from tests.conformance import test_conformance
from tests.conformance.conftest import _families, _run_family
from tests.postgres_server import postgres_server  # noqa: F401 - the session fixture

pytestmark = [pytest.mark.postgres, pytest.mark.filterwarnings("ignore")]

FAMILY, TASK = "support_triage", "category"
# small batches: the guarantees are about the database path, the SQLite conformance run covers volume
ROWS = 20
INSTANCE_FAMILY = "refund_requests"
GUARANTEES = sorted(n for n in dir(test_conformance) if n.startswith("test_"))
URL_ENV = "DAGSTER_PG_URL"


@pytest.fixture
def warehouse(postgres_server) -> Warehouse:  # noqa: F811
    return Warehouse(url=postgres_server.create_database("wh"))


def _register(reg: ModelRegistry, *versions: str) -> None:
    for v in versions:
        reg.register(family=FAMILY, task=TASK, version=v, provider="local", model_id="tfidf-linear",
                     params={"C": 1.0}, training_data_hash=f"data-{v}", created_by="test")


def _refused(engine: sa.Engine, stmt: str) -> str:
    with pytest.raises(sa.exc.DatabaseError, match="append-only") as err:
        with engine.begin() as conn:
            conn.execute(sa.text(stmt))
    return str(err.value.orig)


@pytest.mark.parametrize("table", [AUDIT_TABLE, HISTORY_TABLE])
def test_history_tables_refuse_update_delete_and_truncate(warehouse, table):
    record_event(warehouse, {"family": FAMILY, "event_type": "routing_decision", "record_id": "r1",
                             "decision": "auto", "actor": "policy", "natural_key": "k1", "recorded_at": "now"})
    reg = ModelRegistry.for_warehouse(warehouse)
    _register(reg, "v1")
    reg.promote(FAMILY, TASK, "v1", actor="test", reason="first")
    column = "decision" if table == AUDIT_TABLE else "reason"
    for stmt in (f"UPDATE {table} SET {column} = 'rewritten'", f"DELETE FROM {table}", f"TRUNCATE {table}"):
        assert f"{table} is append-only" in _refused(warehouse.engine, stmt), stmt
    assert read_audit(warehouse, family=FAMILY)["decision"].tolist() == ["auto"]
    assert reg.history(FAMILY, TASK)["reason"].tolist() == ["first"]


def test_the_one_champion_index_refuses_a_second_champion(warehouse):
    reg = ModelRegistry.for_warehouse(warehouse)
    _register(reg, "v1", "v2")
    reg.promote(FAMILY, TASK, "v1", actor="test", reason="first")
    with pytest.raises(sa.exc.IntegrityError, match="uq_model_aliases_one_per_family_task"):
        with warehouse.engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO model_aliases (family, task, version, alias, updated_by, updated_at) "
                f"VALUES ('{FAMILY}', '{TASK}', 'v2', 'champion', 'x', 'now')"))
    assert reg.champion(FAMILY, TASK).version == "v1"


def test_of_two_concurrent_promotions_exactly_one_wins(warehouse):
    """Two threads, each on its own engine (own connections, as two processes), promote at once."""
    _register(ModelRegistry.for_warehouse(warehouse), "base", "a", "b")
    ModelRegistry.for_warehouse(warehouse).promote(FAMILY, TASK, "base", actor="t", reason="initial")
    barrier, outcomes = threading.Barrier(2), {}

    def attempt(version: str) -> None:
        engine = sa.create_engine(warehouse.resolved_url)
        try:
            reg = ModelRegistry(engine)
            barrier.wait()
            reg.promote(FAMILY, TASK, version, actor=f"thread:{version}", reason="race", expected_champion="base")
            outcomes[version] = "won"
        except PromotionConflict:
            outcomes[version] = "lost"
        finally:
            engine.dispose()

    threads = [threading.Thread(target=attempt, args=(v,)) for v in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes.values()) == ["lost", "won"], outcomes
    winner = next(v for v, o in outcomes.items() if o == "won")
    reg = ModelRegistry.for_warehouse(warehouse)
    assert reg.champion(FAMILY, TASK).version == winner
    assert reg.history(FAMILY, TASK).query("alias == 'champion'")["to_version"].tolist() == ["base", winner]


# ---- the families on PostgreSQL: warehouse and Dagster instance ----------------------------------

@pytest.fixture(scope="module")
def pg_instance(postgres_server, tmp_path_factory):  # noqa: F811
    """A Dagster instance whose run, event log and schedule storage is PostgreSQL (dagster-postgres)."""
    import dagster as dg

    home = tmp_path_factory.mktemp("dagster_home")
    # SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3, whose server-side parameters break
    # dagster-postgres's "NOTIFY run_events, %s": its storage needs psycopg2 (README "Production")
    url = postgres_server.create_database("dagster").replace("+psycopg://", "+psycopg2://")
    (home / "dagster.yaml").write_text(yaml.safe_dump({
        "telemetry": {"enabled": False},
        # the URL (with its password) comes from the environment, as in production: never in a file
        "storage": {"postgres": {"postgres_url": {"env": URL_ENV}}},
    }))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(URL_ENV, url)
        with dg.DagsterInstance.from_config(str(home)) as inst:
            yield inst


_PG_RUNS: dict = {}


def pytest_generate_tests(metafunc):
    explicit = any(m.args and m.args[0] == "pg_run" for m in metafunc.definition.iter_markers("parametrize"))
    if "pg_run" in metafunc.fixturenames and not explicit:
        names = [f.name for f in _families(metafunc.config)]
        metafunc.parametrize("pg_run", names, indirect=True, ids=names)


@pytest.fixture(scope="module")
def sqlite_instance():
    import dagster as dg

    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture
def pg_run(request, postgres_server, model_dir):  # noqa: F811
    """The family's small batch run twice on a PostgreSQL warehouse of its own (once per module).

    Only the refund family's runs also keep their Dagster runs and events on PostgreSQL: that
    storage costs a connection per event, ~10 s a family, and is the same code for every family.
    """
    name = request.param
    if name not in _PG_RUNS:
        instance = request.getfixturevalue("pg_instance" if name == INSTANCE_FAMILY else "sqlite_instance")
        url = postgres_server.create_database(name)
        _PG_RUNS[name] = _run_family(request.config, name, instance, model_dir, warehouse_url=url, rows=ROWS)
    return _PG_RUNS[name]


@pytest.mark.parametrize("guarantee", GUARANTEES)
def test_the_conformance_guarantees_hold_on_postgres(pg_run, guarantee):
    assert pg_run.warehouse.engine.dialect.name == "postgresql"
    getattr(test_conformance, guarantee)(pg_run)


@pytest.mark.parametrize("pg_run", [INSTANCE_FAMILY], indirect=True)
def test_a_whole_family_run_with_the_dagster_instance_on_postgres(pg_run, postgres_server):  # noqa: F811
    import dagster as dg
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

    from tests.workflow import materialization_metadata

    instance, family = pg_run.instance, pg_run.family
    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    for result in pg_run.results:
        assert result.success
        assert instance.get_run_by_id(result.run_id).status == dg.DagsterRunStatus.SUCCESS
    tables = set(sa.inspect(pg_run.warehouse.engine).get_table_names())
    for asset in ("raw_records", "enriched_records", "routing_decisions", "kpi_daily"):
        assert family.table(asset) in tables, asset
    assert pg_run.warehouse.count_rows(family.table("routing_decisions")) > 0
    stored = 0
    for result in pg_run.results:
        for key, meta in materialization_metadata(result).items():
            # each materialization is in the PostgreSQL event log, its table in the PostgreSQL warehouse
            assert instance.get_latest_materialization_event(dg.AssetKey.from_user_string(key)) is not None, key
            if "warehouse_table" in meta:
                stored += 1
                assert meta["warehouse_table"] in tables, key
                assert postgres_server.password not in meta["warehouse"] and "***" in meta["warehouse"], key
    assert stored >= 4
    events = [str(e) for r in pg_run.results for e in instance.all_logs(r.run_id)]
    assert not [e for e in events if postgres_server.password in e], "the database password reached a run's logs"
