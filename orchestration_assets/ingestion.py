"""Ingestion: ticket batches from the inbox, and the context sources (CRM, catalog, KB)."""


import dagster as dg
import pandas as pd

from resources.sources import ContextSources, TicketInbox
from resources.warehouse import Warehouse

from .core.parsing import parse_ticket_file, quarantine_ids_seen_elsewhere
from .ui_metadata import column_schema, counts_md, preview_md

OWNERS = ["team:support-ops"]

ticket_batches = dg.DynamicPartitionsDefinition(name="ticket_batches")

RAW_TICKET_SCHEMA = {
    "ticket_id": "string",
    "account_id": "string",
    "customer_email": "string",
    "created_at": "timestamp (UTC)",
    "channel": "string",
    "priority": "string",
    "category": "string (ground-truth label when present)",
    "subject": "string",
    "body": "string",
    "source_file": "string",
    "source_row": "int",
    "input_hash": "string",
    "ingested_at": "timestamp (UTC)",
}


@dg.multi_asset(
    outs={
        "raw_tickets": dg.AssetOut(
            group_name="ingestion",
            description=(
                "Valid support tickets of one inbox batch file; one row per ticket.\n\n"
                "Partitioned by batch file (dynamic partitions `ticket_batches`). Every input row "
                "ends here or in `quarantined_tickets`."
            ),
            kinds={"python", "pandas", "sql"},
            owners=OWNERS,
            code_version="1",
            metadata={"dagster/column_schema": column_schema(RAW_TICKET_SCHEMA)},
        ),
        "quarantined_tickets": dg.AssetOut(
            group_name="ingestion",
            description=(
                "Rows of a batch file that failed parsing or validation; one row per rejected input "
                "row with the file, row number, field(s) and reason."
            ),
            kinds={"python", "pandas", "sql"},
            owners=OWNERS,
            code_version="1",
        ),
    },
    partitions_def=ticket_batches,
)
def ticket_batch(context: dg.AssetExecutionContext, inbox: TicketInbox, warehouse: Warehouse):
    """Parse one inbox file into valid tickets and quarantined rows."""
    batch = context.partition_key
    path = inbox.file_for(batch)
    parsed = parse_ticket_file(path)

    # a ticket id already ingested from another batch would be enriched (and paid for) twice
    seen: dict[str, str] = {}
    if warehouse.has_table("raw_tickets") and not parsed.tickets.empty:
        prior = warehouse.query(
            "SELECT ticket_id, _partition FROM raw_tickets WHERE _partition <> :p", p=batch
        )
        seen = dict(zip(prior["ticket_id"], prior["_partition"]))
    parsed = quarantine_ids_seen_elsewhere(parsed, seen)

    tickets = parsed.tickets.copy()
    tickets["ingested_at"] = pd.Timestamp.now(tz="UTC")
    quarantined = parsed.quarantined

    for err in parsed.file_errors:
        context.log.warning(err)
    if len(quarantined):
        context.log.warning(
            f"{path.name}: {len(quarantined)} of {parsed.rows_in} rows quarantined; "
            f"first: row {quarantined.iloc[0]['source_row']}: {quarantined.iloc[0]['reason']}"
        )
    assert parsed.rows_in == len(tickets) + len(quarantined), "row accounting broken"

    reasons = quarantined["field"].value_counts().to_dict() if len(quarantined) else {}
    yield dg.Output(
        tickets,
        output_name="raw_tickets",
        metadata={
            "source_file": dg.MetadataValue.path(str(path)),
            "rows_in": parsed.rows_in,
            "rows_ok": len(tickets),
            "rows_quarantined": len(quarantined),
            "dagster/row_count": len(tickets),
            "file_errors": dg.MetadataValue.text("; ".join(parsed.file_errors) or "none"),
            "channels": counts_md(tickets["channel"].value_counts().to_dict() if len(tickets) else {}, "channel"),
            "preview": preview_md(tickets, ["ticket_id", "account_id", "created_at", "channel", "priority", "subject"]),
        },
    )
    yield dg.Output(
        quarantined,
        output_name="quarantined_tickets",
        metadata={
            "rows_in": parsed.rows_in,
            "rows_quarantined": len(quarantined),
            "dagster/row_count": len(quarantined),
            "by_field": counts_md(reasons, "field"),
            "preview": preview_md(quarantined, ["source_file", "source_row", "ticket_id", "field", "reason"]),
        },
    )


def _context_output(df: pd.DataFrame, preview_cols: list[str], **extra) -> dg.Output[pd.DataFrame]:
    return dg.Output(
        df,
        metadata={"dagster/row_count": len(df), "preview": preview_md(df, preview_cols), **extra},
    )


@dg.asset(
    group_name="ingestion",
    kinds={"python", "pandas", "sql"},
    owners=["team:revops"],
    code_version="1",
)
def crm_accounts(sources: ContextSources) -> dg.Output[pd.DataFrame]:
    """CRM accounts; one row per customer account with tier, VIP flag, ARR and region."""
    df = sources.accounts()
    return _context_output(
        df,
        ["account_id", "name", "tier", "is_vip", "arr_usd", "region"],
        vip_accounts=int(df["is_vip"].sum()),
        total_arr_usd=float(df["arr_usd"].sum()),
        tiers=counts_md(df["tier"].value_counts().to_dict(), "tier"),
    )


@dg.asset(
    group_name="ingestion",
    kinds={"python", "pandas", "sql"},
    owners=["team:revops"],
    code_version="1",
)
def product_catalog(sources: ContextSources) -> dg.Output[pd.DataFrame]:
    """Product catalog; one row per SKU with its product line, price and billing cycle."""
    df = sources.products()
    return _context_output(df, ["sku", "name", "product_line", "price_usd", "billing"])


@dg.asset(
    group_name="ingestion",
    kinds={"python", "pandas", "sql"},
    owners=["team:support-content"],
    code_version="1",
)
def knowledge_base(sources: ContextSources) -> dg.Output[pd.DataFrame]:
    """Help-centre articles drafts are grounded in; one row per article."""
    df = sources.articles()
    return _context_output(
        df,
        ["article_id", "title", "category", "url"],
        categories=counts_md(df["category"].value_counts().to_dict(), "category"),
    )


context_assets = [crm_accounts, product_catalog, knowledge_base]
ingestion_assets = [ticket_batch, *context_assets]
