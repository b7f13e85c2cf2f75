"""Asset jobs: what a sensor, a schedule or a user launches."""

from __future__ import annotations

import dagster as dg

from .ingestion import ticket_batches

# The flagship workflow for one batch: ingest -> enrich -> route -> audit -> KPIs.
TRIAGE_GROUPS = ("ingestion", "enrichment", "governance", "kpis")
# when this asset has materialized a partition, the batch has gone through the whole workflow
LAST_PARTITIONED_ASSET = "audit_log"

triage_selection = dg.AssetSelection.groups(*TRIAGE_GROUPS)

# Default run config of the batch jobs: a process per step so the enrichment specialists run in
# parallel, started from a forkserver that has the code location and its heavy libraries already
# imported. Measured on the bundled 518-ticket batch, 2 cores: 26 s, against 65 s with Dagster's
# default spawn start method (each step re-imports everything); in-process takes 8 s but serially.
PARALLEL_STEPS = {
    "execution": {
        "config": {
            "multiprocess": {
                "max_concurrent": 4,
                "start_method": {
                    "forkserver": {"preload_modules": ["orchestration_assets.definitions", "sklearn.svm", "pandas"]}
                },
            }
        }
    }
}

triage_job = dg.define_asset_job(
    name="triage_job",
    selection=triage_selection,
    partitions_def=ticket_batches,
    description="The whole triage workflow for one inbox batch: ingest, enrich, route, audit, KPIs.",
    tags={"workflow": "triage"},
    config=PARALLEL_STEPS,
)

ingest_job = dg.define_asset_job(
    name="ingest_job",
    selection=dg.AssetSelection.groups("ingestion"),
    partitions_def=ticket_batches,
    description="Ingest one inbox batch and refresh the context sources, with their data checks.",
)

context_refresh_job = dg.define_asset_job(
    name="context_refresh_job",
    selection=dg.AssetSelection.assets("crm_accounts", "product_catalog", "knowledge_base"),
    description="Reload CRM accounts, the product catalog and the knowledge base.",
)

jobs = [triage_job, ingest_job, context_refresh_job]

kpi_job = dg.define_asset_job(
    name="kpi_job",
    selection=dg.AssetSelection.groups("kpis"),
    description="Recompute the KPI tables over every routed batch.",
)

jobs.append(kpi_job)

# Human-in-the-loop review: record a decision (op job, launchpad config), then dispatch.
from .review import dispatch_job, record_review_decision_job  # noqa: E402

jobs.extend([record_review_decision_job, dispatch_job])

# Models (not part of triage_job): retrain -> evaluate (+ blocking promotion checks) -> promote -> snapshot.
model_training_job = dg.define_asset_job(
    name="model_training_job",
    selection=dg.AssetSelection.groups("models"),
    description="Retrain the triage classifier, evaluate challenger vs champion on the golden set, "
    "promote only if the blocking gates pass, refresh the registry snapshot.",
    tags={"workflow": "models"},
)

model_evaluation_job = dg.define_asset_job(
    name="model_evaluation_job",
    selection=dg.AssetSelection.assets("model_evaluation", "champion_model", "model_registry"),
    description="Evaluate the current challenger vs the champion on the golden set and promote it if the gates pass.",
    tags={"workflow": "models"},
)

jobs.extend([model_training_job, model_evaluation_job])
