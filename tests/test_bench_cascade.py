"""bench/cascade.py on a small slice of the bundled IT sample: what a reader of its table relies on.

Real parts only: the product's training-set preparation and local classifier, the real router
(sessions, spend ledger in a temp SQLite warehouse), and the simulated LLM as a separate
OpenAI-compatible HTTP process the bench starts and stops.
"""

import json
from pathlib import Path

import pytest

from bench import cascade

SAMPLE = str(Path(__file__).resolve().parent.parent / "orchestration_assets" / "defs" / "it_service_desk" / "data"
             / "labelled_tickets.csv")
KEYS = {"points", "best_threshold", "best_accuracy", "best_cost_per_correct_usd", "all_llm_accuracy",
        "all_llm_cost_per_correct_usd", "acc_at_cov_0_7"}


def run_bench(capsys, *args: str) -> tuple[dict, str]:
    code = cascade.main(["--max-train-rows", "1200", "--llm-latency-ms", "5", "--concurrency", "16", *args])
    out = capsys.readouterr().out
    assert code == 0, out[-2000:]
    last = out.strip().splitlines()[-1]
    return json.loads(last), out


def test_cascade_bench_table_and_json(capsys):
    summary, out = run_bench(capsys, "--csv", SAMPLE, "--n", "120", "--llm-accuracy", "1.0", "--thresholds", "0.5,0.7,0.9")
    assert KEYS <= set(summary)
    assert summary["llm"] == "simulated" and "LLM: SIMULATED" in out
    assert summary["n"] == 120
    points = summary["points"]
    all_local, all_llm = points[0], points[-1]
    assert all_local["route"] == "all-local" and all_llm["route"] == "all-LLM"

    # all-local never calls the LLM; all-LLM calls it for every item and pays for each call
    assert all_local["llm_calls"] == 0 and all_local["cost_usd"] == 0 and all_local["kept_local"] == 1.0
    assert all_llm["llm_calls"] == 120 and all_llm["llm_answers"] == 120 and all_llm["kept_local"] == 0.0
    assert all_llm["cost_usd"] > 0 and all_llm["tokens_in"] > 0 and all_llm["fallbacks"] == {}
    # an always-right LLM makes every final decision right
    assert summary["all_llm_accuracy"] == 1.0 and all_llm["correct"] == 120
    assert summary["all_llm_cost_per_correct_usd"] == pytest.approx(all_llm["cost_usd"] / 120, rel=1e-4)

    # along the sweep: fewer items kept local, more calls and dollars, and (LLM always right) no less accuracy
    cascades = [p for p in points if p["route"] == "cascade"]
    assert [p["threshold"] for p in cascades] == [0.5, 0.7, 0.9]
    chain = [all_local, *cascades, all_llm]
    for lo, hi in zip(chain, chain[1:]):
        assert hi["kept_local"] <= lo["kept_local"], (lo, hi)
        assert hi["llm_calls"] >= lo["llm_calls"] and hi["cost_usd"] >= lo["cost_usd"], (lo, hi)
        assert hi["accuracy"] >= lo["accuracy"], (lo, hi)
    assert cascades[-1]["kept_local"] < cascades[0]["kept_local"] and cascades[-1]["cost_usd"] > cascades[0]["cost_usd"]
    for p in cascades:  # each escalated item is exactly one LLM call, answered by the LLM
        escalated = round((1 - p["kept_local"]) * 120)
        assert p["llm_calls"] == escalated == p["llm_answers"], p

    # "best": the cheapest point within one accuracy point of all-LLM's
    adequate = [p for p in points if p["accuracy"] >= summary["all_llm_accuracy"] - 0.01 - 1e-9]
    cheapest = min(p["cost_usd"] for p in adequate)
    best = [p for p in adequate if p["threshold"] == summary["best_threshold"]]
    assert best and best[0]["cost_usd"] == cheapest
    assert summary["best_accuracy"] == best[0]["accuracy"]
    assert summary["best_cost_per_correct_usd"] == best[0]["cost_per_correct_usd"]

    # the local risk-coverage curve: the most confident half is at least as accurate as the whole set
    curve = summary["risk_coverage"]
    assert list(curve) == ["0.5", "0.6", "0.7", "0.8", "0.9"] and summary["acc_at_cov_0_7"] == curve["0.7"]
    assert curve["0.5"] >= all_local["accuracy"]
    # the table a reader sees
    assert "kept local" in out and "$/correct" in out and "<- best" in out


def test_without_the_shared_set_a_useless_llm_is_never_the_best_point(capsys, monkeypatch, tmp_path):
    """No shared set: the bundled sample, said so. An always-wrong LLM (accuracy 0) is honoured, and the
    best point then keeps every item local."""
    monkeypatch.setattr(cascade, "SHARED_DATA", tmp_path)  # a machine without ../shared
    summary, out = run_bench(capsys, "--n", "60", "--llm-accuracy", "0.0", "--thresholds", "0.7")
    assert "bundled training file" in out and summary["data"].endswith("labelled_tickets.csv")
    points = summary["points"]
    assert summary["all_llm_accuracy"] == 0.0 and points[-1]["correct"] == 0 and points[-1]["llm_calls"] == 60
    assert points[-1]["cost_per_correct_usd"] is None  # no correct decision to divide by
    assert summary["best_threshold"] == 0.0 and summary["best_route"] == "all-local"
    assert points[1]["accuracy"] < points[0]["accuracy"]  # escalating to a wrong LLM loses decisions
