"""The model registry: versions keyed by family, one champion per task (a database constraint), history, CLI."""

from __future__ import annotations

import os
import threading
import uuid
from types import SimpleNamespace
from typing import Iterator

import pandas as pd
import pytest
import sqlalchemy as sa

from resources.registry import ModelRegistry, PromotionConflict, RegistryError, ensure_schema
from resources.registry.schema import _old_release_message
from resources.warehouse import Warehouse, engine_for
from resources.warehouse_url import mask_url

FAMILY, TASK = "support_triage", "category"


# Set TEST_POSTGRES_URL (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres, a role that may
# create databases) to run the database-guarantee tests against PostgreSQL too; one database per test.
POSTGRES_URL = os.getenv("TEST_POSTGRES_URL")


@pytest.fixture(params=["sqlite", "postgresql"] if POSTGRES_URL else ["sqlite"])
def url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'w.db'}"
        return
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"registry_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    db_url = sa.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    yield db_url
    engine_for(db_url).dispose()
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE {name} WITH (FORCE)"))
    admin.dispose()


def new_engine(url: str) -> sa.Engine:
    """An engine of its own (own connections), as another process would have."""
    if url.startswith("sqlite"):
        return sa.create_engine(url, connect_args={"timeout": 30})
    return sa.create_engine(url)


@pytest.fixture
def warehouse(url) -> Warehouse:
    return Warehouse(url=url)


@pytest.fixture
def registry(warehouse) -> ModelRegistry:
    return ModelRegistry.for_warehouse(warehouse)


def _register(reg: ModelRegistry, *versions: str, alias: str | None = None, family: str = FAMILY,
              task: str = TASK) -> None:
    for v in versions:
        reg.register(family=family, task=task, version=v, provider="local", model_id="tfidf-linear",
                     params={"C": 1.0}, training_data_hash=f"data-{v}", created_by="test", alias=alias)


def _champions(engine: sa.Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            "SELECT family, task, version FROM model_aliases WHERE alias = 'champion' ORDER BY family, task"))]


def test_register_is_idempotent_and_records_provenance(registry):
    info, created = registry.register(
        family=FAMILY, task=TASK, version="v1", provider="local", model_id="tfidf-linear", params={"C": 0.5},
        prompt_template="Classify: {text}", training_data_hash="abc", training_rows=10,
        training_report={"rows": {"labelled": 10}, "dropped": []}, created_by="user:ana",
    )
    again, created_again = registry.register(family=FAMILY, task=TASK, version="v1", provider="local",
                                             model_id="other", created_by="user:bob", alias="challenger")
    assert created and not created_again
    assert again.model_id == "tfidf-linear" and again.created_by == "user:ana"
    assert again.alias is None  # an existing version's alias does not move on re-registration
    assert info.prompt_hash and info.params == {"C": 0.5} and info.training_rows == 10
    assert registry.get(FAMILY, TASK, "v1").training_report == {"rows": {"labelled": 10}, "dropped": []}
    assert [v.version for v in registry.versions(FAMILY, TASK)] == ["v1"]


def test_concurrent_registrations_of_one_version_create_one_row(url):
    ModelRegistry(new_engine(url))
    barrier = threading.Barrier(6)
    created: list[bool] = []

    def attempt() -> None:
        reg = ModelRegistry(new_engine(url))
        barrier.wait()
        created.append(reg.register(family=FAMILY, task=TASK, version="v1", provider="local", model_id="m",
                                    created_by="t", alias="challenger")[1])

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(created) == [False] * 5 + [True]
    assert ModelRegistry(new_engine(url)).challenger(FAMILY, TASK).version == "v1"


def test_second_champion_row_is_refused_by_the_database(registry, warehouse):
    _register(registry, "v1")
    _register(registry, "v2", alias="challenger")
    registry.promote(FAMILY, TASK, "v1", actor="test", reason="first")
    with pytest.raises(sa.exc.IntegrityError):
        with warehouse.engine.begin() as conn:
            conn.execute(sa.text("UPDATE model_aliases SET alias = 'champion' WHERE version = 'v2'"))
    with pytest.raises(sa.exc.IntegrityError):
        with warehouse.engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO model_aliases (family, task, version, alias, updated_by, updated_at) "
                f"VALUES ('{FAMILY}', '{TASK}', 'v3', 'champion', 'x', 'now')"))
    assert registry.champion(FAMILY, TASK).version == "v1"
    assert _champions(warehouse.engine) == [(FAMILY, TASK, "v1")]


def test_history_is_append_only(registry, warehouse):
    _register(registry, "v1")
    registry.promote(FAMILY, TASK, "v1", actor="test", reason="first")
    for stmt in ("DELETE FROM model_alias_history", "UPDATE model_alias_history SET reason = 'rewritten'"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):
            with warehouse.engine.begin() as conn:
                conn.execute(sa.text(stmt))
    assert registry.history(FAMILY, TASK)["reason"].tolist() == ["first"]


def test_rollback_restores_previous_champion_and_keeps_history(registry):
    _register(registry, "v1", "v2", "v3")
    registry.promote(FAMILY, TASK, "v1", actor="user:ana", reason="bootstrap")
    registry.promote(FAMILY, TASK, "v2", actor="user:ana", reason="better macro-F1", evaluation_id="eval-1")
    registry.promote(FAMILY, TASK, "v3", actor="user:ana", reason="better again", evaluation_id="eval-2")

    old, new = registry.rollback(FAMILY, TASK, actor="user:bob", reason="v3 misroutes refunds")
    assert (old, new) == ("v3", "v2")
    assert registry.champion(FAMILY, TASK).version == "v2"
    assert registry.get(FAMILY, TASK, "v3").alias == "retired"

    champ = registry.history(FAMILY, TASK).query("alias == 'champion'")
    assert champ[["from_version", "to_version"]].fillna("").values.tolist() == [
        ["", "v1"], ["v1", "v2"], ["v2", "v3"], ["v3", "v2"],
    ]
    assert champ.iloc[-1]["actor"] == "user:bob" and champ.iloc[-1]["reason"] == "v3 misroutes refunds"
    assert champ.iloc[1]["evaluation_id"] == "eval-1"  # the earlier rows are untouched

    registry.rollback(FAMILY, TASK, to_version="v1", actor="user:bob", reason="back to the original")
    assert registry.champion(FAMILY, TASK).version == "v1"
    with pytest.raises(RegistryError, match=f"unknown {FAMILY}.{TASK} version 'nope'"):
        registry.rollback(FAMILY, TASK, to_version="nope", actor="user:bob", reason="x")
    with pytest.raises(RegistryError, match="already the champion"):
        registry.rollback(FAMILY, TASK, to_version="v1", actor="user:bob", reason="x")


def test_rollback_without_previous_champion_is_refused(registry):
    _register(registry, "v1")
    with pytest.raises(RegistryError, match="no previous champion"):
        registry.rollback(FAMILY, TASK, actor="t", reason="x")
    registry.promote(FAMILY, TASK, "v1", actor="t", reason="first")
    with pytest.raises(RegistryError, match="no previous champion"):
        registry.rollback(FAMILY, TASK, actor="t", reason="x")


def test_new_challenger_retires_the_previous_challenger(registry):
    _register(registry, "v1", alias="challenger")
    _register(registry, "v2", alias="challenger")
    assert registry.challenger(FAMILY, TASK).version == "v2"
    assert registry.get(FAMILY, TASK, "v1").alias == "retired"
    with pytest.raises(RegistryError, match="unknown alias"):
        registry.set_alias(FAMILY, TASK, "v1", "best", actor="t", reason="x")


def test_stale_promotion_is_refused(registry):
    _register(registry, "v1", "v2", "v3")
    registry.promote(FAMILY, TASK, "v1", actor="t", reason="first")
    registry.promote(FAMILY, TASK, "v2", actor="t", reason="second", expected_champion="v1")
    with pytest.raises(PromotionConflict, match="decided against v1"):
        registry.promote(FAMILY, TASK, "v3", actor="t", reason="evaluated against v1", expected_champion="v1")
    with pytest.raises(PromotionConflict, match="decided against none"):
        registry.promote(FAMILY, TASK, "v3", actor="t", reason="bootstrap", expected_champion=None)
    assert registry.champion(FAMILY, TASK).version == "v2"


def test_concurrent_promotions_cannot_produce_two_champions(url):
    """Eight threads, each with its own engine (own connections), race to promote their version."""
    setup = ModelRegistry(new_engine(url))
    versions = [f"v{i}" for i in range(8)]
    _register(setup, "base", *versions)
    setup.promote(FAMILY, TASK, "base", actor="t", reason="initial")
    barrier = threading.Barrier(len(versions))
    outcomes: dict[str, str] = {}

    def attempt(version: str) -> None:
        reg = ModelRegistry(new_engine(url))
        barrier.wait()
        try:
            reg.promote(FAMILY, TASK, version, actor=f"thread:{version}", reason="race", expected_champion="base")
            outcomes[version] = "won"
        except PromotionConflict:
            outcomes[version] = "lost"

    threads = [threading.Thread(target=attempt, args=(v,)) for v in versions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(outcomes.values()).count("won") == 1 and len(outcomes) == 8
    winner = next(v for v, o in outcomes.items() if o == "won")
    assert _champions(setup.engine) == [(FAMILY, TASK, winner)]
    assert setup.history(FAMILY, TASK).query("alias == 'champion'")["to_version"].tolist() == ["base", winner]


def test_concurrent_raw_champion_inserts_hit_the_constraint(url):
    """Bypassing the registry code entirely, the database still admits one champion per family and task."""
    ensure_schema(new_engine(url))
    barrier = threading.Barrier(6)
    results: list[str] = []

    def insert(i: int) -> None:
        engine = new_engine(url)
        barrier.wait()
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(
                    "INSERT INTO model_aliases (family, task, version, alias, updated_by, updated_at) "
                    "VALUES (:f, :t, :v, 'champion', 'raw', 'now')"), {"f": FAMILY, "t": TASK, "v": f"v{i}"})
            results.append("inserted")
        except sa.exc.IntegrityError:
            results.append("refused")

    threads = [threading.Thread(target=insert, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("inserted") == 1 and results.count("refused") == 5


def test_two_families_with_the_same_task_name_never_collide(registry, warehouse):
    other = "it_service_desk"
    _register(registry, "v1", "v2")
    _register(registry, "v1", "v9", family=other)  # same version string in another family: its own row
    registry.promote(FAMILY, TASK, "v1", actor="t", reason="a")
    registry.promote(FAMILY, TASK, "v2", actor="t", reason="b")
    registry.promote(other, TASK, "v1", actor="t", reason="c")  # no conflict with the first family's champion
    registry.set_alias(other, TASK, "v9", "challenger", actor="t", reason="candidate")

    assert _champions(warehouse.engine) == [(other, TASK, "v1"), (FAMILY, TASK, "v2")]
    assert registry.get(FAMILY, TASK, "v1").alias == "retired" and registry.get(other, TASK, "v1").alias == "champion"
    assert registry.challenger(FAMILY, TASK) is None and registry.challenger(other, TASK).version == "v9"
    with pytest.raises(RegistryError, match="no previous champion"):
        registry.rollback(other, TASK, actor="t", reason="x")  # the other family's history is not its own
    assert registry.rollback(FAMILY, TASK, actor="t", reason="x") == ("v2", "v1")
    assert registry.champion(other, TASK).version == "v1"
    with pytest.raises(RegistryError, match=f"unknown {other}.{TASK} version 'v2'"):
        registry.promote(other, TASK, "v2", actor="t", reason="a version of the other family")

    assert set(registry.snapshot(family=other)["version"]) == {"v1", "v9"}
    assert set(registry.history(family=other)["family"]) == {other}
    assert len(registry.versions()) == 4 and len(registry.versions(other)) == 2


def test_evaluations_are_recorded_and_become_the_versions_latest_metrics(registry):
    _register(registry, "v1", "v2")
    registry.promote(FAMILY, TASK, "v1", actor="t", reason="first")
    registry.set_alias(FAMILY, TASK, "v2", "challenger", actor="t", reason="candidate")
    rec = registry.record_evaluation(
        family=FAMILY, task=TASK, challenger_version="v2", champion_version="v1", golden_set_hash="g",
        golden_rows=3, metrics={"v2": {"macro_f1": 0.9}, "v1": {"macro_f1": 0.8}},
        gates=[{"name": "x", "passed": True, "reason": "ok"}], passed=True, run_id="run-1", created_by="t",
    )
    assert registry.evaluation(rec.evaluation_id) == rec
    assert registry.latest_evaluation(FAMILY, TASK, challenger_version="v2") == rec
    assert registry.latest_evaluation(FAMILY, TASK, challenger_version="v1") is None
    assert registry.latest_evaluation("it_service_desk", TASK) is None
    assert registry.get(FAMILY, TASK, "v2").metrics["macro_f1"] == 0.9
    snap = registry.snapshot(FAMILY, TASK).set_index("version")
    assert snap.loc["v2", "alias"] == "challenger" and snap.loc["v2", "last_evaluation_id"] == rec.evaluation_id
    assert registry.evaluations(FAMILY)["evaluation_id"].tolist() == [rec.evaluation_id]


def test_promotions_per_week_counts_champion_changes(registry):
    _register(registry, "v1", "v2")
    _register(registry, "v1", family="other_family")
    registry.promote(FAMILY, TASK, "v1", actor="t", reason="a")
    registry.promote(FAMILY, TASK, "v2", actor="t", reason="b")
    registry.promote("other_family", TASK, "v1", actor="t", reason="c")
    weekly = registry.promotions_per_week(FAMILY)
    assert isinstance(weekly, pd.DataFrame) and weekly["promotions"].sum() == 2
    assert registry.promotions_per_week()["promotions"].sum() == 3
    assert registry.promotions_per_week("nobody").empty


OLD_RELEASE_TABLE = (
    "CREATE TABLE model_versions (id INTEGER PRIMARY KEY, task VARCHAR(40) NOT NULL, version VARCHAR(120) NOT NULL, "
    "provider VARCHAR(80) NOT NULL, model_id VARCHAR(200) NOT NULL, params TEXT NOT NULL, metrics TEXT NOT NULL, "
    "created_by VARCHAR(200) NOT NULL, created_at VARCHAR(40) NOT NULL)"
)


def test_tables_of_the_release_before_families_give_a_clear_error(url, capsys):
    engine = new_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(OLD_RELEASE_TABLE))
        conn.execute(sa.text("INSERT INTO model_versions (id, task, version, provider, model_id, params, metrics, "
                             "created_by, created_at) "
                             "VALUES (1, 'classify', 'old', 'local', 'm', '{}', '{}', 's', 'x')"))
    with pytest.raises(RegistryError) as err:
        ModelRegistry(engine)
    message = str(err.value)
    assert mask_url(url) in message and "model_versions" in message and "'family'" in message
    assert "WAREHOUSE_URL" in message
    if url.startswith("sqlite"):
        assert "move the old file away" in message and sa.make_url(url).database in message
    assert sa.inspect(engine).get_table_names() == ["model_versions"]  # nothing created, nothing dropped
    engine.dispose()

    from orchestration_assets.registry_cli import main

    assert main(["--warehouse-url", url, "list"]) == 2
    err_line = capsys.readouterr().err.strip()
    assert err_line.startswith("model-registry: the warehouse") and "Traceback" not in err_line
    assert "\n" not in err_line


def test_old_release_error_hides_the_database_password():
    engine = SimpleNamespace(url=sa.make_url("postgresql+psycopg://ops:s3cret@db.internal:5432/warehouse"))
    message = _old_release_message(engine, ["model_versions", "model_aliases"])
    assert "s3cret" not in message and "ops:***@db.internal:5432/warehouse" in message
    assert "point WAREHOUSE_URL at a new database" in message


def test_cli_lists_shows_history_and_rolls_back(registry, warehouse, capsys):
    from orchestration_assets.registry_cli import main

    _register(registry, "v1", "v2")
    _register(registry, "w1", family="other_family")
    registry.promote(FAMILY, TASK, "v1", actor="user:ana", reason="bootstrap")
    registry.promote(FAMILY, TASK, "v2", actor="user:ana", reason="gates passed")
    url = warehouse.resolved_url

    assert main(["--warehouse-url", url, "list"]) == 0
    out = capsys.readouterr().out
    assert "v2" in out and "champion" in out and "retired" in out and "w1" in out
    assert main(["--warehouse-url", url, "list", "--family", FAMILY, "--task", TASK]) == 0
    assert "w1" not in capsys.readouterr().out

    assert main(["--warehouse-url", url, "rollback", "--family", FAMILY, "--task", TASK, "--reason", "bad week",
                 "--actor", "user:oncall"]) == 0
    assert f"{FAMILY}.{TASK}: champion v2 -> v1" in capsys.readouterr().out
    assert registry.champion(FAMILY, TASK).version == "v1"

    assert main(["--warehouse-url", url, "history", "--family", FAMILY]) == 0
    out = capsys.readouterr().out
    assert "user:oncall" in out and "bad week" in out and "gates passed" in out
    assert main(["--warehouse-url", url, "evaluations", "--task", TASK]) == 0
    assert "(none)" in capsys.readouterr().out

    assert main(["--warehouse-url", url, "rollback", "--family", FAMILY, "--task", TASK, "--to", "nope",
                 "--reason", "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("model-registry: rollback refused:") and "unknown" in err and err.count("\n") == 1
    assert main(["--warehouse-url", url, "rollback", "--family", "nobody", "--task", TASK, "--reason", "x"]) == 2
    assert "no previous champion" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["--warehouse-url", url, "rollback", "--task", TASK, "--reason", "x"])  # --family is required
    assert exit_.value.code == 2


def test_cli_reports_an_unusable_warehouse_in_one_line(tmp_path, capsys):
    from orchestration_assets.registry_cli import main

    (tmp_path / "a_directory.db").mkdir()
    assert main(["--warehouse-url", f"sqlite:///{tmp_path / 'a_directory.db'}", "list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("model-registry: cannot use the warehouse sqlite:///") and err.count("\n") == 1
    assert main(["--warehouse-url", "not a url", "history"]) == 2
    assert "not a valid SQLAlchemy URL" in capsys.readouterr().err
    try:
        import pg8000  # noqa: F401
    except ImportError:  # the usual case: a URL whose driver is missing says so, password hidden
        assert main(["--warehouse-url", "postgresql+pg8000://ops:s3cret@127.0.0.1:1/w", "list"]) == 2
        err = capsys.readouterr().err
        assert "driver is not installed" in err and "s3cret" not in err and err.count("\n") == 1


def test_the_dagster_resource_gives_the_registry_of_its_warehouse(warehouse):
    import dagster as dg

    from resources.registry import ModelRegistryResource

    with dg.build_resources({"warehouse": warehouse,
                             "registry": ModelRegistryResource(warehouse=warehouse)}) as res:
        reg = res.registry.get()
        _register(reg, "v1")
    assert ModelRegistry.for_warehouse(warehouse).get(FAMILY, TASK, "v1") is not None
