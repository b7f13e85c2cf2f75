"""End to end on a real `dagster dev` (webserver + daemon): a file dropped in the inbox is triaged.

The user's path with no clicks at all: the daemon's inbox sensor registers the file as a
partition and launches `triage_job` with its default run config (a process per step from a
preloaded forkserver), and the batch comes out enriched, routed and audited.
"""

import pytest

from tests.conftest import small_batch
from tests.e2e.dagster_server import DagsterServer
from tests.e2e.test_review_e2e import runs_of, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore"), pytest.mark.timeout(420)]

BATCH = "batch-dropped.csv"


def test_a_file_dropped_in_the_inbox_is_triaged_by_the_sensor():
    server = DagsterServer(daemon=True)
    with server:
        small_batch(server.inbox, BATCH, n=80)

        runs = wait_for(
            lambda: [r for r in runs_of(server, "triage_job") if r["status"] in ("SUCCESS", "FAILURE", "CANCELED")],
            300, "the inbox sensor's triage run", server,
        )
        assert len(runs) == 1
        run = runs[0]
        assert run["status"] == "SUCCESS", server.run_errors(run["runId"])
        tags = {t["key"]: t["value"] for t in run["tags"]}
        assert tags["dagster/partition"] == BATCH and tags["inbox_file"] == BATCH
        assert tags["dagster/sensor_name"] == "inbox_sensor"

        assert BATCH in server.dynamic_partitions("raw_tickets")
        (raw,) = [m for m in server.asset_materializations("raw_tickets", partition=BATCH) if m.run_id == run["runId"]]
        (enriched,) = [m for m in server.asset_materializations("enriched_tickets", partition=BATCH) if m.run_id == run["runId"]]
        (audit,) = [m for m in server.asset_materializations("audit_log", partition=BATCH) if m.run_id == run["runId"]]
        assert raw.metadata["rows_in"] == 80 == raw.metadata["rows_ok"] + raw.metadata["rows_quarantined"]
        assert enriched.metadata["rows_in"] == raw.metadata["rows_ok"]
        assert audit.metadata["rows_inserted"] == raw.metadata["rows_ok"]
