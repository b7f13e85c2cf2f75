"""Prompt versions in the registry: immutable texts, aliases with the models' guarantees, an append-only history."""

import pytest
import sqlalchemy as sa

from resources.registry import ModelRegistry, PromotionConflict, PromptRegistry, RegistryError
from tests.postgres_server import postgres_server  # noqa: F401 - the session fixture

A = "You answer {{ task }}.\n{{ schema_line }}\n"
B = "You answer {{ task }}, briefly.\n{{ schema_line }}\n"


@pytest.fixture
def engine(tmp_path) -> sa.Engine:
    return sa.create_engine(f"sqlite:///{tmp_path / 'registry.db'}")


def test_the_same_text_registers_once_and_the_first_version_is_champion(engine):
    prompts = PromptRegistry(engine)
    first = prompts.register("fam", "topic", A, actor="user:ann")
    again = prompts.register("fam", "topic", A, actor="user:bob")

    assert first.alias == "champion" and again == first and again.created_by == "user:ann"
    assert len(prompts.versions("fam", "topic")) == 1 and len(prompts.history("fam", "topic")) == 1
    # the same text in another family or task is a version of its own
    assert prompts.register("other", "topic", A, actor="user:ann").alias == "champion"


def test_a_new_text_becomes_challenger_and_never_promotes_itself(engine):
    prompts = PromptRegistry(engine)
    champion = prompts.register("fam", "topic", A, actor="user:ann")
    second = prompts.register("fam", "topic", B, actor="user:ann")
    third = prompts.register("fam", "topic", A + "# v3\n", actor="user:ann")

    assert second.alias == "challenger" and second.version != champion.version
    assert prompts.resolve("fam", "topic", "champion").text == A
    assert prompts.resolve("fam", "topic", "challenger").version == third.version
    assert prompts.get("fam", "topic", second.version).alias == "retired"
    assert prompts.resolve("fam", "topic", second.version).text == B  # a retired text stays readable


def test_promote_and_rollback_are_history_rows(engine):
    prompts = PromptRegistry(engine)
    a = prompts.register("fam", "topic", A, actor="user:ann")
    b = prompts.register("fam", "topic", B, actor="user:ann")

    assert prompts.promote("fam", "topic", "challenger", actor="user:ann", reason="better golden-set score",
                           evaluation_id="eval-1") == a.version
    assert prompts.alias("fam", "topic", "champion").version == b.version
    assert prompts.alias("fam", "topic", "challenger") is None
    assert prompts.rollback("fam", "topic", actor="user:bob", reason="complaints") == (b.version, a.version)
    assert prompts.alias("fam", "topic", "champion").text == A

    h = prompts.history("fam", "topic")
    champion_rows = h[h["alias"] == "champion"]
    assert list(champion_rows["to_version"]) == [a.version, b.version, a.version]
    assert list(champion_rows["reason"])[1:] == ["better golden-set score", "complaints"]
    assert "eval-1" in set(h["evaluation_id"].dropna())
    with pytest.raises(RegistryError, match="already the champion"):
        prompts.rollback("fam", "topic", to_version=a.version, reason="again")
    with pytest.raises(RegistryError, match="no prompt version 'nope'.*registered: "):
        prompts.promote("fam", "topic", "nope", reason="x")


def test_a_promotion_decided_against_an_old_champion_is_refused(engine):
    prompts = PromptRegistry(engine)
    a = prompts.register("fam", "topic", A, actor="user:ann")
    b = prompts.register("fam", "topic", B, actor="user:ann")
    prompts.promote("fam", "topic", b.version, reason="operator")
    c = prompts.register("fam", "topic", A + "x\n", actor="user:ann")
    with pytest.raises(PromotionConflict, match=f"decided against {a.version}"):
        prompts.promote("fam", "topic", c.version, reason="gated", expected_champion=a.version)
    assert prompts.alias("fam", "topic", "champion").version == b.version


def _assert_immutable(engine: sa.Engine) -> None:
    prompts = PromptRegistry(engine)
    prompts.register("fam", "topic", A, actor="user:ann")
    prompts.register("fam", "topic", B, actor="user:ann")
    refused = [
        "UPDATE prompt_alias_history SET reason = 'rewritten'",
        "DELETE FROM prompt_alias_history",
        "UPDATE prompt_versions SET text = 'something else'",
        "DELETE FROM prompt_versions",
    ]
    if engine.dialect.name == "postgresql":
        refused += ["TRUNCATE prompt_alias_history", "TRUNCATE prompt_versions"]
    for stmt in refused:
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), engine.begin() as conn:
            conn.exec_driver_sql(stmt)
    assert len(prompts.history("fam", "topic")) == 2
    assert prompts.resolve("fam", "topic", "champion").text == A
    # the database itself refuses a second champion, and model and prompt champions never collide
    ModelRegistry(engine).register(family="fam", task="topic", version="m1", provider="local", model_id="clf",
                                   alias="champion")
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.text("UPDATE prompt_aliases SET alias = 'champion' WHERE alias = 'challenger'"))
    assert ModelRegistry(engine).champion("fam", "topic").version == "m1"
    assert prompts.alias("fam", "topic", "champion").text == A


def test_texts_and_alias_history_cannot_be_rewritten_on_sqlite(engine):
    _assert_immutable(engine)


@pytest.mark.postgres
def test_texts_and_alias_history_cannot_be_rewritten_on_postgresql(postgres_server):  # noqa: F811
    _assert_immutable(sa.create_engine(postgres_server.create_database("prompts")))
