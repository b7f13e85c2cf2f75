"""Operator alerts: one JSON file per alert in the alerts folder and, by config, a webhook POST.

An alert has a stable ``alert_id`` (e.g. ``run_failure:<run id>``); sending the same alert again
is a no-op, so a sensor that re-evaluates never alerts twice. Alert text is passed through the
redactor, and the deployment's API keys are masked (the sensor passes them), so a secret or an
e-mail address inside an error message never leaves in an alert.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import dagster as dg
import pandas as pd

from .outbox import DeliveryError, atomic_write_json, post_json, safe_file_name
from .warehouse import data_dir


def scrub(value: Any, secrets: Sequence[str | None] = ()) -> Any:
    """``value`` with PII and the given secrets (e.g. API keys) redacted from every string inside it."""
    from .redaction import redact

    if isinstance(value, str):
        for secret in secrets:
            if secret and len(secret) >= 4:
                value = value.replace(secret, "***")
        return redact(value).text
    if isinstance(value, Mapping):
        return {k: scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v, secrets) for v in value]
    return value


class Notifier(dg.ConfigurableResource):
    """Sends operator alerts to ``folder`` (default ``<data dir>/outbox/alerts``) and ``webhook_url`` if set."""

    folder: str = ""
    webhook_url: str = ""
    timeout_seconds: float = 10.0

    @property
    def directory(self) -> Path:
        return Path(self.folder) if self.folder else data_dir() / "outbox" / "alerts"

    def path_for(self, alert_id: str) -> Path:
        return self.directory / safe_file_name(alert_id)

    def send(self, alert: Mapping[str, Any]) -> bool:
        """Deliver an alert (must carry ``alert_id``); False when it was already sent.

        An alert the webhook refused stays in the folder with its ``webhook_error`` and raises; the
        next call (the sensor evaluating the failure again) sends it to the webhook again.
        """
        alert_id = str(alert["alert_id"])
        path = self.path_for(alert_id)
        if path.exists() and not (self.webhook_url and "webhook_error" in json.loads(path.read_text(encoding="utf-8"))):
            return False
        payload = scrub({**alert, "sent_at": pd.Timestamp.now(tz="UTC").isoformat()})
        if self.webhook_url:
            try:
                post_json(self.webhook_url, payload, idempotency_key=alert_id, timeout=self.timeout_seconds)
            except DeliveryError as exc:
                payload["webhook_error"] = str(exc)
                atomic_write_json(path, payload)
                raise
        atomic_write_json(path, payload)
        return True


def run_failure_alert(*, run_id: str, job_name: str, failed_steps: list[dict[str, str]], error: str,
                      partition: str | None = None, occurred_at: str | None = None,
                      family: str | None = None) -> dict[str, Any]:
    """The alert for a failed run: one per run id (``alert_id`` = ``run_failure:<run id>``)."""
    first = failed_steps[0] if failed_steps else {}
    return {
        "alert_id": f"run_failure:{run_id}",
        "kind": "run_failure",
        "severity": "error",
        "run_id": run_id,
        "family": family,
        "job_name": job_name,
        "partition": partition,
        "failed_step": first.get("step"),
        "error": first.get("error") or error,
        "failed_steps": failed_steps,
        "run_error": error,
        "occurred_at": occurred_at or pd.Timestamp.now(tz="UTC").isoformat(),
        "summary": f"run {run_id} of {job_name} failed"
        + (f" at step {first['step']}" if first.get("step") else "")
        + (f": {(first.get('error') or error).splitlines()[0][:300]}" if (first.get("error") or error) else ""),
    }


def alert_audit_event(alert: Mapping[str, Any]) -> pd.DataFrame:
    """The audit-log event recording that ``alert`` was raised (natural key = alert id)."""
    details = scrub({k: alert.get(k) for k in ("job_name", "failed_step", "error", "failed_steps", "summary")})
    return pd.DataFrame([{
        "event_type": "alert",
        "family": alert.get("family"),
        "record_id": None,
        "decision": str(alert.get("kind", "alert")),
        "reasons": [s.get("step") for s in alert.get("failed_steps", []) if s.get("step")],
        "actor": "monitor",
        "run_id": alert.get("run_id"),
        "partition": alert.get("partition"),
        "details": details,
        "natural_key": f"alert:{alert['alert_id']}",
        "recorded_at": pd.Timestamp.now(tz="UTC").isoformat(),
    }])
