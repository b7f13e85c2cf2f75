"""The triage graph with an OpenAI-compatible LLM configured: real SDK, real local HTTP server.

What a user switching on an LLM would check: only unsure tickets reach the LLM, PII never
leaves, an unchanged batch costs nothing the second time, spend shows in the UI metadata, and
the API key appears nowhere.
"""

from __future__ import annotations

import re

import pytest
import yaml

from orchestration_assets.definitions import build_definitions
from orchestration_assets.ingestion import ticket_batches
from resources.redaction import find_pii
from resources.router import ModelRouter
from tests.conftest import build_test_resources, materialization_metadata, small_batch
from tests.openai_server import OpenAICompatServer

pytestmark = pytest.mark.filterwarnings("ignore")

SECRET = "sk-test-TRIAGE-9b1d4e7a2c"
KEY = "batch-llm.csv"
CASCADE_BELOW = 0.75


def routing_config(url: str) -> dict:
    return {
        "endpoints": {
            "testllm": {
                "base_url": url,
                "timeout_s": 5.0,
                "max_attempts": 2,
                "backoff": {"initial_s": 0.01, "max_s": 0.05, "jitter_s": 0.01},
            }
        },
        "models": {
            "small": {
                "endpoint": "testllm",
                "model": "test-small",
                "params": {"temperature": 0, "max_tokens": 200},
                "price": {"input_per_1m": 0.15, "output_per_1m": 0.60},
            }
        },
        "tasks": {
            "classify": {"provider": "local", "escalate_below_confidence": CASCADE_BELOW, "escalate_to": ["small"]},
            "draft_reply": {"provider": "small"},
        },
        "budget": {"per_run_usd": 5.0, "per_partition_usd": 5.0},
    }


@pytest.fixture
def llm_triage(tmp_path, data_dir, model_dir, instance):
    with OpenAICompatServer() as server:
        cfg = tmp_path / "routing.yaml"
        cfg.write_text(yaml.safe_dump(routing_config(server.url)))
        resources = build_test_resources(data_dir, model_dir, router=ModelRouter(config_path=str(cfg), api_key=SECRET))
        small_batch(data_dir / "inbox", KEY, n=60)
        instance.add_dynamic_partitions(ticket_batches.name, [KEY])
        job = build_definitions(resources).resolve_job_def("triage_job")

        def run():
            result = job.execute_in_process(partition_key=KEY, instance=instance)
            assert result.success
            return result

        yield run, server, resources["warehouse"], instance


def test_llm_drafts_cascade_cache_and_no_leaks(llm_triage):
    run, server, wh, instance = llm_triage
    first = run()
    enriched = wh.read_table("enriched_tickets", partitions=[KEY])
    ok = enriched[enriched["status"] == "enriched"]
    assert len(ok) == len(enriched)

    # drafts came from the LLM; only tickets the local classifier was unsure of went to the LLM
    assert set(ok["draft_path"]) == {"llm"}
    classify_calls = [r for r in server.chat_requests if r.task == "classify"]
    sent_ids = {r.ticket_id for r in classify_calls}
    cascaded = set(ok.loc[ok["classify_path"] == "cascade:llm", "ticket_id"])
    assert sent_ids == cascaded and 0 < len(cascaded) < len(ok)
    classifications = wh.read_table("ticket_classifications", partitions=[KEY])
    assert (classifications.loc[classifications["classify_path"] == "cascade:local", "classify_confidence"] >= CASCADE_BELOW).all()

    # no PII from the tickets reached the external provider
    raw = wh.read_table("raw_tickets", partitions=[KEY])
    emails = set(re.findall(r"[\w.+-]+@[\w-]+\.[\w.]+", " ".join(raw["body"])))
    assert emails, "the sample batch should contain e-mail addresses"
    sent_text = " ".join(r.raw.decode("utf-8", "replace") for r in server.chat_requests)
    assert not any(e in sent_text for e in emails)
    # (the help-centre articles sent as grounding may name support addresses; the ticket text may not)
    leaks = [r.ticket_id for r in server.chat_requests
             if find_pii(f"{r.user_payload.get('subject', '')}\n{r.user_payload.get('body', '')}")]
    assert not leaks, leaks[:5]
    assert all("body" in r.user_payload for r in server.chat_requests)
    assert int(ok["redactions"].sum()) > 0

    # cost is accounted per row and shows as metadata in the UI
    assert ok["draft_cost_usd"].gt(0).all() and ok["cost_usd"].sum() > 0
    drafts_meta = materialization_metadata(first)["draft_replies"]
    assert drafts_meta["llm.calls"] == len(ok) and drafts_meta["llm.cost_usd"] > 0
    calls_first = server.call_count

    # an unchanged batch re-materialized: zero HTTP calls, same drafts
    second = run()
    assert server.call_count == calls_first
    again = wh.read_table("enriched_tickets", partitions=[KEY])
    assert list(again.sort_values("ticket_id")["draft_reply"]) == list(enriched.sort_values("ticket_id")["draft_reply"])
    assert materialization_metadata(second)["draft_replies"]["llm.cache_hits"] == len(ok)

    # the key reached the server, and nowhere else: not the event log, metadata or any table
    assert all(r.headers.get("Authorization", r.headers.get("authorization")) == f"Bearer {SECRET}" for r in server.chat_requests)
    logs = instance.all_logs(first.run_id) + instance.all_logs(second.run_id)
    assert logs and not any(SECRET in str(e) for e in logs)
    for table in wh.query("SELECT name FROM sqlite_master WHERE type='table'")["name"]:
        dump = wh.query(f'SELECT * FROM "{table}"').to_csv()
        assert SECRET not in dump, table
