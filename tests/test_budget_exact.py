"""Budgets exact across processes: two processes racing one budget never overspend and use it up."""

import logging
import threading
import time

import pytest
import sqlalchemy as sa

from resources.router import ledger_spend
from resources.router.holds import BudgetHolds
from resources.router.routes import Budget
from resources.warehouse import Warehouse
from tests.openai_server import OpenAICompatServer
from tests.postgres_server import postgres_server  # noqa: F401 - the session fixture
from tests.router_fixtures import budget_catalog, catalog, make_items, routed, router_for, session_for
from tests.router_fixtures import family, local  # noqa: F401 - pytest fixtures
from tests.router_race import Racer, race
from tests.router_race import racer  # noqa: F401 - the module fixture

PER_CALL = 0.001
BUDGET = 10.5 * PER_CALL  # affords exactly 10 calls


def race_two(racer: Racer, catalog_path: str, warehouse_url: str, **kw) -> list[dict]:
    """The subprocess and this process race at the same moment, each its own router session."""
    start_at = time.time() + 0.3
    racer.send(catalog=catalog_path, warehouse=warehouse_url, prefix="A", start_at=start_at, **kw)
    mine: dict = {}
    worker = threading.Thread(target=lambda: mine.update(race(catalog_path, warehouse_url, prefix="B",
                                                              start_at=start_at, **kw)))
    worker.start()
    worker.join()
    return [racer.result(), mine]


def assert_budget_used_exactly(srv, warehouse: Warehouse, results: list[dict]) -> None:
    spend = ledger_spend(warehouse, family="support_triage")
    assert spend.cost_usd <= BUDGET + 1e-9, f"overspent: ${spend.cost_usd} of ${BUDGET}"
    calls = sum(r["calls"] for r in results)
    routed_requests = [r for r in srv.chat_requests if r.record_id]  # not the racers' warm-up requests
    assert calls == len(routed_requests) == spend.calls
    assert 9 <= calls <= 10, results  # what the budget affords, within one call
    assert sum(r["refused"] for r in results) == 40 - calls
    with warehouse.engine.connect() as conn:  # every hold went with its batch
        assert conn.execute(sa.text("SELECT COUNT(*) FROM llm_spend_holds")).scalar_one() == 0


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_two_processes_racing_one_daily_budget_never_overspend(backend, racer, tmp_path, request):
    if backend == "postgres":
        url = request.getfixturevalue("postgres_server").create_database("budget")
    else:
        url = f"sqlite:///{tmp_path / 'wh.db'}"
    with OpenAICompatServer(completion_tokens_from_max_tokens=True, latency_s=0.02) as srv:
        path = tmp_path / "models.yaml"
        router_for(tmp_path, budget_catalog(srv.url, PER_CALL))  # writes models.yaml
        results = race_two(racer, str(path), url, items=20, per_day=BUDGET)
        assert_budget_used_exactly(srv, Warehouse(url=url), results)


def test_the_naive_read_at_start_budget_overspends(racer, tmp_path):
    """The baseline the holds replace: each process sees the whole budget and spends it."""
    url = f"sqlite:///{tmp_path / 'wh.db'}"
    with OpenAICompatServer(completion_tokens_from_max_tokens=True, latency_s=0.02) as srv:
        router_for(tmp_path, budget_catalog(srv.url, PER_CALL))
        results = race_two(racer, str(tmp_path / "models.yaml"), url, items=20, per_day=BUDGET, naive=True)
    assert sum(r["calls"] for r in results) == 20  # 10 each: twice what the budget affords


class Clock:
    """The holds' wall clock, moved by the test (a lapse without waiting for it)."""

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now


def test_a_crashed_holders_reservation_lapses(tmp_path, monkeypatch):
    warehouse = Warehouse(url=f"sqlite:///{tmp_path / 'wh.db'}")
    clock = Clock()
    monkeypatch.setattr("resources.router.holds.time", clock)

    def holds(ttl: float) -> BudgetHolds:
        return BudgetHolds(warehouse, "llm_spend", family="f", run_id="r", per_run=None, per_day=1.0, ttl_s=ttl)

    crashed, alive = holds(30), holds(60)
    assert crashed.extend(1.0, need=0.1)[0] == pytest.approx(1.0)  # then its process dies
    assert alive.extend(0.5, need=0.1)[0] == 0.0  # the whole budget is held: nothing is granted
    clock.now += 31
    assert alive.extend(0.5, need=0.1)[0] == pytest.approx(0.5)
    # a renewal of the lapsed hold re-checks the caps instead of resurrecting it
    assert crashed.extend(crashed.held, need=0.0, committed=0.0)[0] == pytest.approx(0.5)
    # a session that cannot get what it needs gives its unused headroom back
    assert alive.extend(0.9, need=0.6, committed=0.2)[0] == pytest.approx(0.2)
    with warehouse.engine.connect() as conn:
        live = conn.execute(sa.text("SELECT SUM(amount_usd) FROM llm_spend_holds WHERE expires_at > :now"),
                            {"now": clock.now}).scalar_one()
    assert live <= 1.0 + 1e-9


def test_a_call_costing_more_than_its_worst_case_is_logged_and_counted(family, local, tmp_path, caplog):
    # the server reports 1000 output tokens while max_tokens is 100: the reservation was too small
    with OpenAICompatServer(usage=(10, 1000)) as srv:
        router = router_for(tmp_path, catalog(srv.url, cache={"enabled": False}))
        session = session_for(router, local, routed("summary"), Budget(per_run_usd=1.0),
                              warehouse=Warehouse(url=f"sqlite:///{tmp_path / 'wh.db'}"), run_id="over")
        with caplog.at_level(logging.WARNING):
            batch = session.run(family.tasks["summary"], make_items(3))
    assert batch.stats.budget_overruns == 3 and session.stats().as_metadata()["llm.budget_overruns"] == 3
    assert "more than its reserved worst case" in caplog.text and "'testllm'" in caplog.text
