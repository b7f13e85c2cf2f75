"""The record-ingest API as an upstream system sees it: tokens, validation, the inbox hand-over, replays, limits.

The ingest router runs in a FastAPI app of its own under Starlette's TestClient, on a temp SQLite
warehouse and a temp inbox. The rows posted are rows of the family's own sample batch (bad rows
included), so the reasons can be compared with what file ingestion gives for the same rows. The
inbox sensor is ticked with ``dg.build_sensor_context`` on a fake clock, as in test_inbox_drop.py;
one test runs the family's workflow job in-process on what the API accepted. The crash test runs
the real service (uvicorn) in a subprocess and SIGKILLs it as soon as the response is read.
"""

import asyncio
import csv
import hashlib
import http.client
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from orchestration_assets.core.records import parse_file
from orchestration_assets.service.ingest import _fingerprint, ingest_router
from orchestration_assets.service.ingest_batches import RECORDS_TABLE, REQUESTS_TABLE, ingest
from orchestration_assets.service.settings import ServiceSettings
from orchestration_assets.service.tokens import TOKENS_TABLE, create_token, revoke_token
from resources.sources import Inbox
from resources.warehouse import engine_for
from sensors.inbox import inbox_sensor
from tests.e2e.dagster_server import free_port
from tests.governance_fixtures import Env, failure_message
from tests.postgres_server import postgres_server  # noqa: F401 - the session fixture
from tests.workflow import DEFS, inbox_of, sample_files

pytestmark = pytest.mark.filterwarnings("ignore")

FAMILY = "support_triage"
URL = f"/api/families/{FAMILY}/records"
LIMIT_BYTES, LIMIT_RECORDS = 200_000, 120
WEBHOOK = DEFS / FAMILY / "examples" / "webhook.json"
REPO = Path(__file__).resolve().parent.parent


@dataclass
class Service:
    client: TestClient
    token: str
    url: str
    folder: Path
    inbox: Inbox

    def post(self, body=None, *, token: str | None = "", family: str = FAMILY, **kwargs):
        headers = kwargs.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token or self.token}"
        if body is not None:
            kwargs["json"] = body
        return self.client.post(f"/api/families/{family}/records", headers=headers, **kwargs)

    def batches(self) -> list[Path]:
        return sorted(p for p in self.folder.iterdir() if not p.name.startswith("."))


def make_service(root: Path, families: dict, url: str | None = None, inbox: Inbox | None = None,
                 family: str = FAMILY) -> Service:
    url = url or f"sqlite:///{root / 'warehouse.db'}"
    settings = ServiceSettings(warehouse_url=url, secret_key="not-used-by-ingest",
                               max_request_bytes=LIMIT_BYTES, max_batch_records=LIMIT_RECORDS)
    inbox = inbox or Inbox(root=str(root / "inbox"))
    app = FastAPI()
    app.include_router(ingest_router(settings, inbox=inbox, families=families))
    token, _ = create_token(url, "helpdesk", [family])
    return Service(TestClient(app), token, url, inbox_of(families[family], {"inbox": inbox}), inbox)


@pytest.fixture
def service(tmp_path, families) -> Service:
    return make_service(tmp_path, families)


def sample_rows(families, first: int, last: int, family: str = FAMILY) -> tuple[list[str], list[dict]]:
    """Rows ``first``..``last`` (1-based data rows) of the family's first sample CSV, as a helpdesk would post them."""
    with sample_files(families[family])[0].open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    return list(reader.fieldnames), rows[first - 1:last]


def as_csv(path: Path, header: list[str], rows: list[dict]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def tick_until_run(family, instance, inbox: Inbox) -> dg.RunRequest:
    """The family's inbox sensor ticked on a fake clock until it asks for a run; the partition registered."""
    now = [1_000_000.0]
    sensor, cursor = inbox_sensor(family, clock=lambda: now[0]), None
    for _ in range(3):
        now[0] += inbox.settle_seconds + 5
        result = sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources={"inbox": inbox}))
        cursor = result.cursor
        if result.run_requests:
            for req in result.dynamic_partitions_requests or []:
                instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
            (run,) = result.run_requests
            return run
    raise AssertionError(f"the inbox sensor never took the batch: {result.skip_reason}")


def webhook() -> dict:
    return json.loads(WEBHOOK.read_text(encoding="utf-8"))


def test_a_missing_wrong_or_revoked_token_is_refused_and_another_family_is_forbidden(service):
    missing = service.post(webhook(), token=None)
    assert missing.status_code == 401 and "Authorization: Bearer" in missing.json()["error"]
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")

    forged = service.token[:-4] + ("AAAA" if not service.token.endswith("AAAA") else "BBBB")
    for wrong in (forged, "aop_0123456789abcdef_" + "A" * 43, "x" * 500):
        refused = service.post(webhook(), token=wrong)
        assert refused.status_code == 401 and "not recognised or revoked" in refused.json()["error"]
        assert wrong not in refused.text

    other = service.post(webhook(), family="it_service_desk")
    assert other.status_code == 403 and "'helpdesk'" in other.json()["error"] and FAMILY in other.json()["error"]
    assert service.post(webhook(), family="no_such_family").status_code == 404
    assert service.batches() == []  # nothing refused reached the inbox

    revoke_token(service.url, service.token.split("_")[1])
    assert service.post(webhook()).status_code == 401 and service.batches() == []


def test_bad_rows_get_the_field_and_reason_file_quarantine_gives_and_only_good_rows_are_written(service, families,
                                                                                                 tmp_path):
    header, rows = sample_rows(families, 105, 200)  # holds the sample's empty account, bad timestamp, bad channel
    rows.append(dict(rows[4]))  # row 109 again: a duplicate id inside the request
    answer = service.post({"records": rows})
    assert answer.status_code == 200, answer.text

    from_file = parse_file(as_csv(tmp_path / "same-rows.csv", header, rows), families[FAMILY].record)
    expected = {(int(r.source_row), r.field, r.reason) for r in from_file.quarantined.itertuples()}
    got = answer.json()
    assert {(r["row"], r["field"], r["reason"]) for r in got["rejected"]} == expected
    assert {r["field"] for r in got["rejected"]} >= {"account_id", "created_at", "channel", "ticket_id"}
    assert all(r["index"] == r["row"] - 1 for r in got["rejected"])
    assert got["accepted"] == list(from_file.records["record_id"]) and got["received"] == len(rows)

    (batch,) = service.batches()
    assert batch.name == got["batch"] and batch.suffix == ".jsonl"
    written = parse_file(batch, families[FAMILY].record)  # the file the batch run will read
    assert list(written.records["record_id"]) == got["accepted"] and written.quarantined.empty


def test_nothing_valid_is_422_with_the_reasons_and_nothing_is_written(service):
    bad = {**webhook(), "channel": "fax", "created_at": "yesterday"}
    answer = service.post([bad])
    assert answer.status_code == 422
    (row,) = answer.json()["rejected"]
    assert row["index"] == 0 and row["field"] == "created_at,channel" and "'fax' is not one of" in row["reason"]
    assert answer.json()["accepted"] == [] and service.batches() == []


def test_the_written_batch_is_taken_by_the_family_inbox_sensor(service, families, instance):
    answer = service.post([webhook()])
    run = tick_until_run(families[FAMILY], instance, service.inbox)
    assert run.partition_key == answer.json()["batch"] and run.tags["family"] == FAMILY


def test_the_webhook_example_goes_through_the_family_column_mapping(service, families):
    answer = service.post(webhook())
    assert answer.status_code == 200 and answer.json()["accepted"] == ["T-900001"]
    (record,) = parse_file(service.batches()[0], families[FAMILY].record).records.to_dict(orient="records")
    # the helpdesk's own names (category, priority) land in the mapped fields, values normalised;
    # its other keys (status, requester, tags) are not fields of the family and are ignored
    assert record["labelled_priority"] == "high" and record["labelled_category"] == "account_access"
    assert record["channel"] == "email" and not {"status", "requester", "tags"} & set(record)


def test_posted_records_arrive_enriched_through_the_family_run(families, tmp_path, model_dir, instance):
    name = "refund_requests"  # the bundled family with no classifier to train: the run takes seconds
    family = families[name]
    env = Env([family], tmp_path / "env", model_dir, instance)
    service = make_service(tmp_path, families, url=env.warehouse.resolved_url, inbox=env.resources["inbox"],
                           family=name)
    _, rows = sample_rows(families, 1, 6, family=name)
    answer = service.post(rows, family=name).json()
    assert len(answer["accepted"]) == 6, answer

    run = tick_until_run(family, instance, env.resources["inbox"])
    # the workflow's assets up to enriched_records, as the sensor's run materializes them; the data checks
    # (Great Expectations) and governance steps are other tests' subject and would triple the time
    upto_enriched = (dg.AssetSelection.assets(dg.AssetKey(family.key("enriched_records"))).upstream()
                     .required_multi_asset_neighbors().without_checks())
    result = dg.materialize(list(env.defs.resolve_asset_graph().assets_defs), selection=upto_enriched,
                            partition_key=run.partition_key, instance=instance, tags=run.tags, raise_on_error=False)
    assert result.success, failure_message(result)
    enriched = env.warehouse.read_table(family.table("enriched_records"), partitions=[answer["batch"]])
    assert sorted(enriched["record_id"]) == sorted(answer["accepted"])
    # the records went through every task: a summary and a sentiment each, refund amounts read from their text
    assert enriched["summary"].str.len().gt(0).all() and enriched["sentiment"].notna().all()
    assert enriched["refund_amount"].notna().sum() >= 3 and enriched["failure_reason"].isna().all()


def test_a_replayed_request_is_accepted_once(service, families):
    first = service.post([webhook()], headers={"Idempotency-Key": "evt-1"})
    again = service.post([webhook()], headers={"Idempotency-Key": "evt-1"})
    assert first.status_code == again.status_code == 200
    assert first.json()["replayed"] is False and again.json()["replayed"] is True
    assert again.headers["Idempotent-Replayed"] == "true"
    assert {**again.json(), "replayed": False} == first.json()
    reused = service.post([{**webhook(), "ticket_id": "T-900002"}], headers={"Idempotency-Key": "evt-1"})
    assert reused.status_code == 422 and "evt-1" in reused.json()["error"] and "another body" in reused.json()["error"]

    # no key: the same body from the same source is the same request
    _, rows = sample_rows(families, 1, 3)
    plain = service.post(rows)
    assert plain.json()["replayed"] is False and service.post(rows).json()["replayed"] is True

    # a new request repeating ids accepted before: those are duplicates, the new one accepted
    _, more = sample_rows(families, 3, 4)
    overlap = service.post(more).json()
    assert overlap["accepted"] == [more[1]["ticket_id"]]
    assert [(d["index"], d["record_id"]) for d in overlap["duplicates"]] == [(0, rows[2]["ticket_id"])]
    assert plain.json()["batch"] in overlap["duplicates"][0]["reason"]
    assert len(service.batches()) == 3  # evt-1, the plain batch, the one new record
    ids = [json.loads(line)["ticket_id"] for b in service.batches() for line in b.read_text().splitlines()]
    assert sorted(ids) == sorted({"T-900001", *(r["ticket_id"] for r in rows + more)})


def _race(engine, family, folder: Path, rows: list[dict], key: str | None, n: int = 4) -> list:
    """``n`` identical requests let go at the same instant."""
    body_sha = _fingerprint(rows)
    barrier, outcomes = threading.Barrier(n), []

    def send():
        barrier.wait()
        try:
            outcomes.append(ingest(engine, family, folder, "helpdesk", rows, idempotency_key=key, body_sha=body_sha))
        except Exception as exc:  # noqa: BLE001 - reported below, with the others' answers
            outcomes.append(exc)

    threads = [threading.Thread(target=send) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(outcomes) == n, "a request did not finish"
    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    return outcomes


def _concurrent_identical_requests_write_once(url: str, families, service: Service):
    family, engine = families[FAMILY], engine_for(url)
    for key, (first, last) in (("evt-race", (1, 20)), (None, (21, 40))):
        _, rows = sample_rows(families, first, last)
        outcomes = _race(engine, family, service.folder, rows, key)
        fresh = [o for o in outcomes if not o.replayed]
        assert len(fresh) == 1, [o.body for o in outcomes]
        assert all({**o.body, "replayed": False} == fresh[0].body for o in outcomes)
        assert len(fresh[0].body["accepted"]) == 20
    written = [json.loads(line)["ticket_id"] for b in service.batches() for line in b.read_text().splitlines()]
    assert len(service.batches()) == 2 and len(written) == len(set(written)) == 40
    with engine.connect() as conn:
        assert conn.exec_driver_sql(f"SELECT count(*) FROM {RECORDS_TABLE}").scalar_one() == 40


def test_concurrent_identical_requests_write_one_batch(service, families):
    _concurrent_identical_requests_write_once(service.url, families, service)


@pytest.mark.postgres
def test_concurrent_identical_requests_write_one_batch_on_postgresql(postgres_server, families, tmp_path):  # noqa: F811
    url = postgres_server.create_database("ingest")
    _concurrent_identical_requests_write_once(url, families, make_service(tmp_path, families, url=url))


async def _asgi_post(app, headers: dict[str, str], chunk: bytes, chunks: int) -> tuple[int, dict, int]:
    """POST straight to the ASGI app, the body arriving ``chunk`` by ``chunk``: (status, JSON, chunks read)."""
    read, sent = [0], []

    async def receive():
        read[0] += 1
        return {"type": "http.request", "body": chunk, "more_body": read[0] < chunks}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": URL, "raw_path": URL.encode(), "query_string": b"", "root_path": "",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
             "client": ("127.0.0.1", 1234), "server": ("testserver", 80)}
    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body), read[0]


def test_an_oversized_body_or_too_many_records_is_413_before_the_body_is_read_whole(service):
    auth = {"Authorization": f"Bearer {service.token}", "Content-Type": "application/json"}
    app, chunk = service.client.app, b" " * 16_384
    status, body, read = asyncio.run(_asgi_post(app, {**auth, "Content-Length": str(10**10)}, chunk, 10**6))
    assert status == 413 and str(LIMIT_BYTES) in body["error"] and read == 0  # refused on the header alone
    status, body, read = asyncio.run(_asgi_post(app, auth, chunk, 10**6))  # chunked: no Content-Length
    assert status == 413 and read == LIMIT_BYTES // len(chunk) + 1  # stopped at the limit, not at the end

    too_many = service.post([webhook()] * (LIMIT_RECORDS + 1))
    assert too_many.status_code == 413 and f"at most {LIMIT_RECORDS}" in too_many.json()["error"]
    assert too_many.json()["request"] == f"POST {URL}" and service.batches() == []


@pytest.mark.parametrize("body, reason", [
    (b'{"ticket_id": "T-1", ', "not valid JSON: Expecting property name enclosed in double quotes at line 1 column 22"),
    (b"", "empty request body"),
    (b"\xff\xfe\x00junk", "not UTF-8"),
    (b'"just a string"', "is a JSON str"),
    (b"[]", "holds no records"),
    (b"[[1, 2]]", "is a JSON list, not an object"),
])
def test_a_malformed_body_is_400_naming_the_request(service, body, reason):
    answer = service.post(content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and reason in answer.json()["error"], answer.text
    assert answer.json()["request"] == f"POST {URL}" and "Traceback" not in answer.text


def test_the_token_is_nowhere_but_as_its_digest(service, families, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "aop_" + service.token.split("_", 1)[1][::-1]
    answers = [service.post([webhook()]), service.post([webhook()]), service.post([webhook()], token=wrong),
               service.post([webhook()], family="it_service_desk"), service.post([webhook()] * (LIMIT_RECORDS + 1)),
               service.post(content=b"{", headers={"Content-Type": "application/json"})]
    assert [a.status_code for a in answers] == [200, 200, 401, 403, 413, 400]
    # the token is aop_<16 hex id>_<43-char secret>, and the secret itself may hold "_"
    secret, wrong_secret = service.token.split("_", 2)[2], wrong.split("_", 1)[1]

    db = sqlite3.connect(service.url.removeprefix("sqlite:///"))
    tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    dump = {t: repr(db.execute(f'SELECT * FROM "{t}"').fetchall()) for t in tables}
    assert {TOKENS_TABLE, REQUESTS_TABLE, RECORDS_TABLE} <= set(dump)
    assert hashlib.sha256(service.token.encode()).hexdigest() in dump[TOKENS_TABLE]
    files = [p.read_text(errors="ignore") for p in tmp_path.rglob("*") if p.is_file() and "warehouse.db" not in p.name]
    assert "source helpdesk: 1 accepted" in caplog.text  # the log was captured, and names the source instead
    for text in [a.text for a in answers] + [caplog.text, *dump.values(), *files]:
        assert secret not in text and wrong_secret not in text


def test_tokens_are_created_listed_and_revoked_from_the_command_line(service, capsys):
    from orchestration_assets.service.cli import main

    cli = ["--warehouse-url", service.url, "token"]
    assert main([*cli, "create", "--source", "crm", "--family", FAMILY]) == 0
    out, err = capsys.readouterr()
    token = out.strip()
    assert token.startswith("aop_") and len(token) > 60 and "shown only this once" in err and token not in err
    token_id = token.split("_")[1]

    assert service.post([webhook()], token=token).status_code == 200
    assert main([*cli, "list"]) == 0
    listed = capsys.readouterr().out
    (line,) = [ln for ln in listed.splitlines() if ln.startswith(token_id)]
    assert "\tcrm\t" in line and FAMILY in line and "last used never" not in line and "active" in line
    assert token.split("_", 2)[2] not in listed

    assert main([*cli, "revoke", token_id]) == 0 and "revoked" in capsys.readouterr().out
    assert service.post([{**webhook(), "ticket_id": "T-900009"}], token=token).status_code == 401

    assert main([*cli, "create", "--source", "crm", "--family", "nope"]) == 2
    assert "no such family" in capsys.readouterr().err
    assert main([*cli, "create", "--source", "Bad Source", "--family", FAMILY]) == 2
    assert "lower-case letters" in capsys.readouterr().err
    assert main([*cli, "revoke", "0123456789abcdef"]) == 2 and "no API token" in capsys.readouterr().err


def test_an_accepted_batch_survives_the_server_being_killed_right_after_the_response(families, tmp_path):
    url, inbox = f"sqlite:///{tmp_path / 'warehouse.db'}", tmp_path / "inbox"
    token, _ = create_token(url, "helpdesk", [FAMILY])
    port = free_port()
    env = {**os.environ, "DATA_DIR": str(tmp_path / "data"), "INBOX_DIR": str(inbox), "SERVICE_SECRET_KEY": "k" * 40}
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestration_assets.service.cli", "--warehouse-url", url, "serve",
         "--port", str(port), "--log-level", "warning"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_port(port, proc)
        _, rows = sample_rows(families, 100, 210)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("POST", URL, body=json.dumps(rows),
                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        response = conn.getresponse()
        answer = json.loads(response.read())
        os.killpg(proc.pid, signal.SIGKILL)  # the moment the client has its answer
        proc.wait(timeout=30)
        assert response.status == 200 and len(answer["accepted"]) > 100
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        proc.stdout.close()

    folder = inbox / FAMILY
    assert [p.name for p in folder.iterdir()] == [answer["batch"]]  # complete, and no temporary file left
    written = parse_file(folder / answer["batch"], families[FAMILY].record)
    assert list(written.records["record_id"]) == answer["accepted"] and written.quarantined.empty
    # the request was committed too: sent again to a restarted service, it is a replay, not a second batch
    again = make_service(tmp_path / "restarted", families, url=url, inbox=Inbox(root=str(inbox))).post(rows)
    assert again.json().get("replayed") is True, again.text
    assert len(list(folder.iterdir())) == 1


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the service exited with {proc.returncode}:\n{proc.stdout.read().decode()[-3000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"the service did not listen on port {port} within {timeout:.0f} s")
