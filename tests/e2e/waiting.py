"""Waiting on a running `dagster dev`: runs of a job, and a condition with a timeout."""

import time

from tests.e2e.dagster_server import DagsterServer

RUNS_QUERY = """
query($job: String!) {
  runsOrError(filter: {pipelineName: $job}) {
    ... on Runs { results { runId status tags { key value } } }
  }
}
"""


def runs_of(server: DagsterServer, job: str) -> list[dict]:
    return server.graphql(RUNS_QUERY, {"job": job})["runsOrError"]["results"]


def wait_for(predicate, timeout: float, what: str, server: DagsterServer):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1.0)
    raise AssertionError(f"timed out waiting for {what}; server log:\n{server.log_tail()}")
