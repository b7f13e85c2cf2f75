"""A real Dagster webserver for end-to-end tests, and a small GraphQL client for it.

``DagsterServer`` starts ``dagster-webserver`` (or ``dagster dev``, which adds the daemon, when
``daemon=True``) from the repo root with the project's ``.venv`` binaries, on a free 127.0.0.1
port, with a temporary ``DAGSTER_HOME`` (telemetry off) and a temporary ``DATA_DIR``. It waits
until GraphQL answers and the code location has loaded, and on ``stop()`` kills the whole
process group it started (webserver, code server, run workers), even when a test failed.

Without the daemon, runs are launched directly (``DefaultRunCoordinator``) and no sensor or
schedule ticks, so a test fully controls what runs.

    with DagsterServer() as server:
        server.add_dynamic_partition("support_triage__batches", "batch-2026-11-23.csv")
        run_id = server.launch_run("support_triage__ingest", partition_key="batch-2026-11-23.csv")
        assert server.wait_for_run(run_id) == "SUCCESS"
        server.asset_materializations("support_triage/raw_records", partition="batch-2026-11-23.csv")
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = REPO_ROOT / ".venv" / "bin"
TERMINAL_RUN_STATUSES = {"SUCCESS", "FAILURE", "CANCELED"}
# settings that would point the server at the developer's own data; tests pass them explicitly
ISOLATED_ENV_VARS = {
    "DAGSTER_HOME", "DATA_DIR", "WAREHOUSE_URL", "INBOX_DIR", "MODEL_DIR", "MODELS_CONFIG", "OUTBOX_DIR",
    "ALERTS_DIR", "ALERTS_WEBHOOK_URL", "OPENAI_API_KEY",
}

DAGSTER_YAML_BASE = """\
telemetry:
  enabled: false
"""
# without the daemon nobody dequeues runs: launch them directly
DAGSTER_YAML_NO_DAEMON = """\
run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
"""

_METADATA_FIELDS = """
  label
  __typename
  ... on IntMetadataEntry { intValue }
  ... on FloatMetadataEntry { floatValue }
  ... on BoolMetadataEntry { boolValue }
  ... on TextMetadataEntry { text }
  ... on MarkdownMetadataEntry { mdStr }
  ... on JsonMetadataEntry { jsonString }
  ... on PathMetadataEntry { path }
  ... on UrlMetadataEntry { url }
"""


class DagsterServerError(RuntimeError):
    """The server did not start, or GraphQL answered with an error; the message carries details."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metadata_dict(entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """GraphQL ``metadataEntries`` as ``{label: python value}`` (JSON entries decoded)."""
    out: dict[str, Any] = {}
    for e in entries:
        if "jsonString" in e:
            out[e["label"]] = json.loads(e["jsonString"])
            continue
        for key in ("intValue", "floatValue", "boolValue", "text", "mdStr", "path", "url"):
            if key in e:
                out[e["label"]] = e[key]
                break
        else:
            out[e["label"]] = None
    return out


@dataclass
class Materialization:
    run_id: str
    partition: str | None
    timestamp: float
    metadata: dict[str, Any]


@dataclass
class CheckExecution:
    check_name: str
    run_id: str
    status: str  # SUCCEEDED / FAILED / EXECUTION_FAILED / SKIPPED / IN_PROGRESS
    partition: str | None
    passed: bool | None
    severity: str | None
    description: str | None
    metadata: dict[str, Any] = field(default_factory=dict)


class DagsterServer:
    """One real Dagster webserver (optionally with the daemon) and a GraphQL client for it."""

    def __init__(
        self,
        *,
        daemon: bool = False,
        data_dir: Path | None = None,
        dagster_home: Path | None = None,
        env: Mapping[str, str] | None = None,
        startup_timeout: float = 90.0,
    ) -> None:
        self.daemon = daemon
        self._tmp = Path(tempfile.mkdtemp(prefix="dagster-e2e-"))
        self.data_dir = Path(data_dir) if data_dir else self._tmp / "data"
        self.dagster_home = Path(dagster_home) if dagster_home else self._tmp / "dagster_home"
        self.extra_env = dict(env or {})
        self.startup_timeout = startup_timeout
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self._tmp / "server.log"
        self._proc: subprocess.Popen | None = None
        self.pgid: int | None = None  # the process group of everything this server started
        self._log_file = None
        self._client = httpx.Client(base_url=self.url, timeout=30.0)
        self.location_name: str | None = None
        self.repository_name: str | None = None

    # ---- lifecycle ---------------------------------------------------------------------------
    def inbox(self, family: str) -> Path:
        """The family's inbox folder under the server's data dir."""
        path = self.data_dir / "inbox" / family
        path.mkdir(parents=True, exist_ok=True)
        return path

    def command(self) -> list[str]:
        host_port = ["-h", "127.0.0.1", "-p", str(self.port)]
        workspace = ["-w", str(REPO_ROOT / "workspace.yaml")]
        if self.daemon:
            return [str(VENV_BIN / "dagster"), "dev", *host_port, *workspace]
        return [str(VENV_BIN / "dagster-webserver"), *host_port, *workspace]

    def start(self) -> DagsterServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.dagster_home.mkdir(parents=True, exist_ok=True)
        yaml = DAGSTER_YAML_BASE + ("" if self.daemon else DAGSTER_YAML_NO_DAEMON)
        (self.dagster_home / "dagster.yaml").write_text(yaml)
        inherited = {k: v for k, v in os.environ.items() if k not in ISOLATED_ENV_VARS}
        env = {
            **inherited,
            "DAGSTER_HOME": str(self.dagster_home),
            "DATA_DIR": str(self.data_dir),
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p),
            "DAGSTER_DISABLE_TELEMETRY": "1",
            "GX_ANALYTICS_ENABLED": "False",
            **self.extra_env,
        }
        self._log_file = open(self.log_path, "wb")
        self._proc = subprocess.Popen(
            self.command(),
            cwd=REPO_ROOT,
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() kills everything it spawns
        )
        self.pgid = self._proc.pid
        try:
            self._wait_until_loaded()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_loaded(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise DagsterServerError(
                    f"dagster exited with code {self._proc.returncode} before answering; log:\n{self.log_tail()}"
                )
            try:
                data = self.graphql(
                    """
                    query {
                      workspaceOrError {
                        __typename
                        ... on Workspace {
                          locationEntries {
                            name
                            loadStatus
                            locationOrLoadError {
                              __typename
                              ... on PythonError { message stack }
                              ... on RepositoryLocation { name repositories { name } }
                            }
                          }
                        }
                      }
                    }
                    """
                )
            except (httpx.HTTPError, DagsterServerError) as exc:
                last_error = repr(exc)
                time.sleep(0.5)
                continue
            entries = (data["workspaceOrError"] or {}).get("locationEntries") or []
            loaded = [e for e in entries if e["loadStatus"] == "LOADED" and e["locationOrLoadError"]]
            if entries and len(loaded) == len(entries):
                for entry in loaded:
                    loc = entry["locationOrLoadError"]
                    if loc["__typename"] == "PythonError":
                        raise DagsterServerError(
                            f"code location {entry['name']} failed to load: {loc['message']}\n"
                            + "".join(loc["stack"][-8:])
                        )
                loc = loaded[0]["locationOrLoadError"]
                self.location_name = loc["name"]
                self.repository_name = loc["repositories"][0]["name"]
                return
            last_error = f"locations not loaded yet: {[(e['name'], e['loadStatus']) for e in entries]}"
            time.sleep(0.5)
        raise DagsterServerError(
            f"dagster did not load within {self.startup_timeout:.0f}s ({last_error}); log:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """Terminate the whole process group (SIGTERM, then SIGKILL after 15 s); idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            pgid = proc.pid  # start_new_session made the server the leader of its own group
            try:
                os.killpg(pgid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
            deadline = time.monotonic() + 15
            while process_group_alive(pgid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if process_group_alive(pgid):
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        self._client.close()

    def cleanup(self) -> None:
        """Remove the temporary DAGSTER_HOME / DATA_DIR (after ``stop``)."""
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> DagsterServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.cleanup()

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    # ---- GraphQL -----------------------------------------------------------------------------
    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        resp = self._client.post("/graphql", json={"query": query, "variables": dict(variables or {})})
        if resp.status_code != 200:
            raise DagsterServerError(f"GraphQL HTTP {resp.status_code}: {resp.text[:2000]}")
        body = resp.json()
        if body.get("errors"):
            raise DagsterServerError(f"GraphQL errors: {json.dumps(body['errors'])[:2000]}")
        return body["data"]

    @property
    def repository_selector(self) -> dict[str, str]:
        return {"repositoryLocationName": self.location_name, "repositoryName": self.repository_name}

    def add_dynamic_partition(self, partitions_def_name: str, partition_key: str) -> None:
        """Register a dynamic partition (an already-registered key is fine)."""
        data = self.graphql(
            """
            mutation($sel: RepositorySelector!, $name: String!, $key: String!) {
              addDynamicPartition(repositorySelector: $sel, partitionsDefName: $name, partitionKey: $key) {
                __typename
                ... on Error { message }
              }
            }
            """,
            {"sel": self.repository_selector, "name": partitions_def_name, "key": partition_key},
        )["addDynamicPartition"]
        if data["__typename"] not in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"):
            raise DagsterServerError(f"addDynamicPartition failed: {data}")

    def dynamic_partitions(self, asset_key: str) -> list[str]:
        data = self.graphql(
            """
            query($key: AssetKeyInput!) {
              assetNodeOrError(assetKey: $key) { ... on AssetNode { partitionKeys } }
            }
            """,
            {"key": _asset_key(asset_key)},
        )
        return list(data["assetNodeOrError"].get("partitionKeys") or [])

    def launch_run(
        self,
        job_name: str,
        *,
        partition_key: str | None = None,
        run_config: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        asset_selection: Sequence[str] | None = None,
    ) -> str:
        """Launch ``job_name`` (for one partition) through ``launchRun``; returns the run id."""
        all_tags = dict(tags or {})
        if partition_key is not None:
            all_tags["dagster/partition"] = partition_key
        selector: dict[str, Any] = {**self.repository_selector, "jobName": job_name}
        if asset_selection:
            selector["assetSelection"] = [_asset_key(k) for k in asset_selection]
        data = self.graphql(
            """
            mutation($params: ExecutionParams!) {
              launchRun(executionParams: $params) {
                __typename
                ... on LaunchRunSuccess { run { runId } }
                ... on RunConfigValidationInvalid { errors { message } }
                ... on PythonError { message stack }
                ... on Error { message }
              }
            }
            """,
            {
                "params": {
                    "selector": selector,
                    "runConfigData": dict(run_config or {}),
                    "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in all_tags.items()]},
                }
            },
        )["launchRun"]
        if data["__typename"] != "LaunchRunSuccess":
            raise DagsterServerError(f"launchRun of {job_name} failed: {json.dumps(data)[:3000]}")
        return data["run"]["runId"]

    def run_status(self, run_id: str) -> str:
        data = self.graphql(
            'query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } ... on Error { message } } }',
            {"id": run_id},
        )["runOrError"]
        if data["__typename"] != "Run":
            raise DagsterServerError(f"run {run_id}: {data}")
        return data["status"]

    def wait_for_run(self, run_id: str, timeout: float = 120.0, poll: float = 0.5) -> str:
        """Poll until the run ends; returns SUCCESS / FAILURE / CANCELED (raises on timeout)."""
        deadline = time.monotonic() + timeout
        status = "UNKNOWN"
        while time.monotonic() < deadline:
            status = self.run_status(run_id)
            if status in TERMINAL_RUN_STATUSES:
                return status
            time.sleep(poll)
        raise DagsterServerError(f"run {run_id} still {status} after {timeout:.0f}s; log:\n{self.log_tail()}")

    def run_job_for_partition(
        self,
        job_name: str,
        partition_key: str,
        *,
        partitions_def_name: str,
        timeout: float = 120.0,
        run_config: Mapping[str, Any] | None = None,
    ) -> str:
        """Register the partition, launch ``job_name`` for it and wait; returns the run id.

        Raises with the run's step errors when the run does not succeed.
        """
        self.add_dynamic_partition(partitions_def_name, partition_key)
        run_id = self.launch_run(job_name, partition_key=partition_key, run_config=run_config)
        status = self.wait_for_run(run_id, timeout=timeout)
        if status != "SUCCESS":
            errors = "\n".join(self.run_errors(run_id)) or self.log_tail()
            raise DagsterServerError(f"{job_name} run {run_id} for {partition_key} ended {status}:\n{errors}")
        return run_id

    def run_errors(self, run_id: str) -> list[str]:
        """Error messages of a run's failed steps and of the run itself, for assertion messages."""
        data = self.graphql(
            """
            query($id: ID!) {
              logsForRun(runId: $id, limit: 5000) {
                ... on EventConnection {
                  events {
                    __typename
                    ... on MessageEvent { message stepKey level }
                    ... on ErrorEvent { error { message stack } }
                  }
                }
              }
            }
            """,
            {"id": run_id},
        )["logsForRun"]
        out = []
        for e in data.get("events", []):
            if e.get("error"):
                out.append(f"[{e.get('stepKey')}] {e['error']['message']}{''.join(e['error']['stack'][-3:])}")
            elif e.get("level") in ("ERROR", "CRITICAL"):
                out.append(f"[{e.get('stepKey')}] {e.get('message')}")
        return out

    def asset_materializations(
        self, asset_key: str, *, partition: str | None = None, limit: int = 20
    ) -> list[Materialization]:
        data = self.graphql(
            """
            query($key: AssetKeyInput!, $partitions: [String!], $limit: Int) {
              assetOrError(assetKey: $key) {
                __typename
                ... on Asset {
                  assetMaterializations(partitions: $partitions, limit: $limit) {
                    runId partition timestamp
                    metadataEntries { %s }
                  }
                }
              }
            }
            """
            % _METADATA_FIELDS,
            {"key": _asset_key(asset_key), "partitions": [partition] if partition else None, "limit": limit},
        )["assetOrError"]
        if data["__typename"] != "Asset":
            return []
        return [
            Materialization(m["runId"], m["partition"], float(m["timestamp"]) / 1000, metadata_dict(m["metadataEntries"]))
            for m in data["assetMaterializations"]
        ]

    def asset_check_names(self, asset_key: str) -> list[str]:
        data = self.graphql(
            """
            query($keys: [AssetKeyInput!]) {
              assetNodes(assetKeys: $keys) {
                assetChecksOrError { __typename ... on AssetChecks { checks { name } } }
              }
            }
            """,
            {"keys": [_asset_key(asset_key)]},
        )["assetNodes"]
        if not data or data[0]["assetChecksOrError"]["__typename"] != "AssetChecks":
            return []
        return sorted(c["name"] for c in data[0]["assetChecksOrError"]["checks"])

    def asset_check_executions(
        self, asset_key: str, check_name: str, *, partition: str | None = None, limit: int = 10
    ) -> list[CheckExecution]:
        """Executions of one check, newest first (``partition`` filters to that partition)."""
        data = self.graphql(
            """
            query($key: AssetKeyInput!, $name: String!, $partition: String, $limit: Int!) {
              assetCheckExecutions(assetKey: $key, checkName: $name, partition: $partition, limit: $limit) {
                runId status partition
                evaluation { success severity description partition metadataEntries { %s } }
              }
            }
            """
            % _METADATA_FIELDS,
            {"key": _asset_key(asset_key), "name": check_name, "partition": partition, "limit": limit},
        )["assetCheckExecutions"]
        out = []
        for e in data:
            ev = e["evaluation"] or {}
            out.append(
                CheckExecution(
                    check_name=check_name,
                    run_id=e["runId"],
                    status=e["status"],
                    partition=e["partition"],
                    passed=ev.get("success"),
                    severity=ev.get("severity"),
                    description=ev.get("description"),
                    metadata=metadata_dict(ev.get("metadataEntries") or []),
                )
            )
        return out

    def latest_check_results(
        self, asset_key: str, *, run_id: str | None = None, partition: str | None = None
    ) -> dict[str, CheckExecution | None]:
        """For every check defined on the asset: its newest execution (in ``run_id`` if given)."""
        results: dict[str, CheckExecution | None] = {}
        for name in self.asset_check_names(asset_key):
            execs = self.asset_check_executions(asset_key, name, partition=partition)
            if run_id is not None:
                execs = [e for e in execs if e.run_id == run_id]
            results[name] = execs[0] if execs else None
        return results


def _asset_key(key: str | Sequence[str]) -> dict[str, list[str]]:
    return {"path": key.split("/") if isinstance(key, str) else list(key)}


def process_group_alive(pgid: int) -> bool:
    """Whether any process of the group still exists."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
