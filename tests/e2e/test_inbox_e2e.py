"""End to end on a real `dagster dev` (webserver + daemon): a file dropped in a family's inbox is processed.

The user's path with no clicks at all: the daemon runs the family's inbox sensor, which registers
the file as a partition and launches the family's workflow job (a batch this small with the
in-process executor, ``Inbox.in_process_max_bytes``), and the batch comes out enriched, routed and audited.
"""

import pytest

from orchestration_assets.loading import load_families
from tests.e2e.dagster_server import DagsterServer
from tests.e2e.waiting import runs_of, wait_for
from tests.workflow import DEFS, copy_batch, sample_files

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore"), pytest.mark.timeout(480)]

FAMILY = "it_service_desk"
ROWS = 80


def test_a_file_dropped_in_the_inbox_is_processed_by_the_sensor():
    family = next(f for f in load_families(DEFS) if f.name == FAMILY)
    server = DagsterServer(daemon=True)
    with server:
        batch = copy_batch(sample_files(family)[0], server.inbox(FAMILY), n=ROWS, name="dropped.csv")
        job = family.job_name("workflow")
        runs = wait_for(
            lambda: [r for r in runs_of(server, job) if r["status"] in ("SUCCESS", "FAILURE", "CANCELED")],
            360, "the inbox sensor's workflow run", server,
        )
        assert len(runs) == 1
        run = runs[0]
        assert run["status"] == "SUCCESS", server.run_errors(run["runId"])
        tags = {t["key"]: t["value"] for t in run["tags"]}
        assert tags["dagster/partition"] == batch.name and tags["inbox_file"] == batch.name
        assert tags["dagster/sensor_name"] == f"{FAMILY}__inbox_sensor" and tags["family"] == FAMILY

        def one(asset: str):
            (m,) = [m for m in server.asset_materializations(f"{FAMILY}/{asset}", partition=batch.name)
                    if m.run_id == run["runId"]]
            return m.metadata

        raw, enriched, audit = one("raw_records"), one("enriched_records"), one("audit_log")
        assert raw["rows_in"] == ROWS == raw["rows_ok"] + raw["rows_quarantined"]
        assert enriched["rows_in"] == raw["rows_ok"]
        assert audit["rows_inserted"] == raw["rows_ok"]
