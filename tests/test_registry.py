"""The model registry: versions, one champion per task (a database constraint), history, rollback, CLI."""

from __future__ import annotations

import threading

import pandas as pd
import pytest
import sqlalchemy as sa

from resources.registry import (
    ModelRegistry,
    PromotionConflict,
    RegistryError,
    ensure_schema,
)
from resources.warehouse import Warehouse


@pytest.fixture
def warehouse(tmp_path) -> Warehouse:
    return Warehouse(url=f"sqlite:///{tmp_path / 'warehouse.db'}")


@pytest.fixture
def registry(warehouse) -> ModelRegistry:
    return ModelRegistry.for_warehouse(warehouse)


def _register(reg: ModelRegistry, *versions: str, alias: str | None = None) -> None:
    for v in versions:
        reg.register(task="classify", version=v, provider="local", model_id="tfidf-linear",
                     params={"C": 1.0}, training_data_hash=f"data-{v}", created_by="test", alias=alias)


def test_register_is_idempotent_and_records_provenance(registry):
    info, created = registry.register(task="classify", version="v1", provider="local", model_id="tfidf-linear",
                                      params={"C": 0.5}, prompt_template="Classify: {text}",
                                      training_data_hash="abc", training_rows=10, created_by="user:ana")
    again, created_again = registry.register(task="classify", version="v1", provider="local", model_id="other",
                                             created_by="user:bob")
    assert created and not created_again
    assert again.model_id == "tfidf-linear" and again.created_by == "user:ana"
    assert info.prompt_hash and info.params == {"C": 0.5} and info.training_rows == 10
    assert len(registry.versions("classify")) == 1


def test_second_champion_row_is_refused_by_the_database(registry, warehouse):
    _register(registry, "v1")
    _register(registry, "v2", alias="challenger")
    registry.promote("classify", "v1", actor="test", reason="first")
    with pytest.raises(sa.exc.IntegrityError):
        with warehouse.engine.begin() as conn:
            conn.execute(sa.text("UPDATE model_aliases SET alias = 'champion' WHERE version = 'v2'"))
    with pytest.raises(sa.exc.IntegrityError):
        with warehouse.engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO model_aliases (task, version, alias, updated_by, updated_at) "
                "VALUES ('classify', 'v3', 'champion', 'x', 'now')"
            ))
    assert registry.champion("classify").version == "v1"


def test_history_is_append_only(registry, warehouse):
    _register(registry, "v1")
    registry.promote("classify", "v1", actor="test", reason="first")
    for stmt in ("DELETE FROM model_alias_history", "UPDATE model_alias_history SET reason = 'rewritten'"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):
            with warehouse.engine.begin() as conn:
                conn.execute(sa.text(stmt))
    assert registry.history("classify")["reason"].tolist() == ["first"]


def test_rollback_restores_previous_champion_and_keeps_history(registry):
    _register(registry, "v1", "v2", "v3")
    registry.promote("classify", "v1", actor="user:ana", reason="bootstrap")
    registry.promote("classify", "v2", actor="user:ana", reason="better macro-F1", evaluation_id="eval-1")
    registry.promote("classify", "v3", actor="user:ana", reason="better again", evaluation_id="eval-2")

    old, new = registry.rollback("classify", actor="user:bob", reason="v3 misroutes refunds")
    assert (old, new) == ("v3", "v2")
    assert registry.champion("classify").version == "v2"
    assert registry.get("classify", "v3").alias == "retired"

    h = registry.history("classify")
    champ = h[h["alias"] == "champion"]
    assert champ[["from_version", "to_version"]].fillna("").values.tolist() == [
        ["", "v1"], ["v1", "v2"], ["v2", "v3"], ["v3", "v2"],
    ]
    last = champ.iloc[-1]
    assert last["actor"] == "user:bob" and last["reason"] == "v3 misroutes refunds"
    assert champ.iloc[1]["evaluation_id"] == "eval-1"  # the earlier rows are untouched

    registry.rollback("classify", to_version="v1", actor="user:bob", reason="back to the original")
    assert registry.champion("classify").version == "v1"
    with pytest.raises(RegistryError, match="unknown classify version"):
        registry.rollback("classify", to_version="nope", actor="user:bob", reason="x")


def test_rollback_without_previous_champion_is_refused(registry):
    _register(registry, "v1")
    with pytest.raises(RegistryError, match="no previous champion"):
        registry.rollback("classify", actor="t", reason="x")
    registry.promote("classify", "v1", actor="t", reason="first")
    with pytest.raises(RegistryError, match="no previous champion"):
        registry.rollback("classify", actor="t", reason="x")


def test_new_challenger_retires_the_previous_challenger(registry):
    _register(registry, "v1", alias="challenger")
    _register(registry, "v2", alias="challenger")
    assert registry.challenger("classify").version == "v2"
    assert registry.get("classify", "v1").alias == "retired"


def test_stale_promotion_is_refused(registry):
    _register(registry, "v1", "v2", "v3")
    registry.promote("classify", "v1", actor="t", reason="first")
    registry.promote("classify", "v2", actor="t", reason="second", expected_champion="v1")
    with pytest.raises(PromotionConflict, match="decided against v1"):
        registry.promote("classify", "v3", actor="t", reason="evaluated against v1", expected_champion="v1")
    assert registry.champion("classify").version == "v2"


def test_concurrent_promotions_cannot_produce_two_champions(tmp_path):
    """Eight threads, each with its own engine (own connections), race to promote their version."""
    url = f"sqlite:///{tmp_path / 'race.db'}"
    setup = ModelRegistry(sa.create_engine(url))
    versions = [f"v{i}" for i in range(8)]
    _register(setup, "base", *versions)
    setup.promote("classify", "base", actor="t", reason="initial")

    barrier = threading.Barrier(len(versions))
    outcomes: dict[str, str] = {}

    def attempt(version: str) -> None:
        reg = ModelRegistry(sa.create_engine(url, connect_args={"timeout": 30}))
        barrier.wait()
        try:
            reg.promote("classify", version, actor=f"thread:{version}", reason="race",
                        expected_champion="base")
            outcomes[version] = "won"
        except PromotionConflict:
            outcomes[version] = "lost"

    threads = [threading.Thread(target=attempt, args=(v,)) for v in versions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(outcomes.values()).count("won") == 1
    winner = next(v for v, o in outcomes.items() if o == "won")
    with setup.engine.connect() as conn:
        champions = conn.execute(sa.text(
            "SELECT version FROM model_aliases WHERE task = 'classify' AND alias = 'champion'")).scalars().all()
    assert champions == [winner]
    h = setup.history("classify")
    assert h[h["alias"] == "champion"]["to_version"].tolist() == ["base", winner]


def test_concurrent_raw_champion_inserts_hit_the_constraint(tmp_path):
    """Bypassing the registry code entirely, the database still admits one champion per task."""
    url = f"sqlite:///{tmp_path / 'raw.db'}"
    ensure_schema(sa.create_engine(url))
    barrier = threading.Barrier(6)
    results: list[str] = []

    def insert(i: int) -> None:
        engine = sa.create_engine(url, connect_args={"timeout": 30})
        barrier.wait()
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(
                    "INSERT INTO model_aliases (task, version, alias, updated_by, updated_at) "
                    "VALUES ('classify', :v, 'champion', 'raw', 'now')"), {"v": f"v{i}"})
            results.append("inserted")
        except sa.exc.IntegrityError:
            results.append("refused")

    threads = [threading.Thread(target=insert, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("inserted") == 1 and results.count("refused") == 5


def test_schema_upgrade_adds_missing_columns_and_keeps_rows(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # an older release's table: fewer columns, one row
        conn.execute(sa.text(
            "CREATE TABLE model_versions (id INTEGER PRIMARY KEY, task VARCHAR(40) NOT NULL, version VARCHAR(120) NOT NULL, "
            "provider VARCHAR(80) NOT NULL, model_id VARCHAR(200) NOT NULL, params TEXT NOT NULL, metrics TEXT NOT NULL, "
            "created_by VARCHAR(200) NOT NULL, created_at VARCHAR(40) NOT NULL)"))
        conn.execute(sa.text(
            "INSERT INTO model_versions (task, version, provider, model_id, params, metrics, created_by, created_at) "
            "VALUES ('classify', 'old', 'local', 'm', '{}', '{}', 'someone', '2026-01-01')"))
    reg = ModelRegistry(engine)
    cols = {c["name"] for c in sa.inspect(engine).get_columns("model_versions")}
    assert {"training_data_hash", "prompt_hash", "artifact"} <= cols
    assert reg.get("classify", "old").created_by == "someone"
    reg.promote("classify", "old", actor="t", reason="works on the upgraded schema")
    assert reg.champion("classify").version == "old"


def test_cli_lists_shows_history_and_rolls_back(registry, warehouse, capsys):
    from orchestration_assets.registry_cli import main

    _register(registry, "v1", "v2")
    registry.promote("classify", "v1", actor="user:ana", reason="bootstrap")
    registry.promote("classify", "v2", actor="user:ana", reason="gates passed")
    url = warehouse.resolved_url

    assert main(["--warehouse-url", url, "list"]) == 0
    out = capsys.readouterr().out
    assert "v2" in out and "champion" in out and "retired" in out

    assert main(["--warehouse-url", url, "rollback", "--task", "classify", "--reason", "bad week",
                 "--actor", "user:oncall"]) == 0
    assert "champion v2 -> v1" in capsys.readouterr().out
    assert registry.champion("classify").version == "v1"

    assert main(["--warehouse-url", url, "history", "--task", "classify"]) == 0
    out = capsys.readouterr().out
    assert "user:oncall" in out and "bad week" in out and "gates passed" in out

    assert main(["--warehouse-url", url, "rollback", "--to", "nope", "--reason", "x"]) == 2
    assert "rollback refused" in capsys.readouterr().err


def test_promotions_per_week_counts_champion_changes(registry):
    _register(registry, "v1", "v2")
    registry.promote("classify", "v1", actor="t", reason="a")
    registry.promote("classify", "v2", actor="t", reason="b")
    weekly = registry.promotions_per_week("classify")
    assert isinstance(weekly, pd.DataFrame) and weekly["promotions"].sum() == 2
