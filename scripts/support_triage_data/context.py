"""The context files: product catalog, CRM accounts and help-centre articles."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from random import Random
from typing import Any

from .bank import Bank
from .draw import iso, slug, weighted

CRM_COLUMNS: tuple[str, ...] = (
    "account_id", "name", "tier", "is_vip", "arr_usd", "region", "csm_email", "created_at",
)
CATALOG_COLUMNS: tuple[str, ...] = ("sku", "name", "product_line", "price_usd", "billing")
KB_FIELDS: tuple[str, ...] = ("article_id", "title", "category", "url", "body")


def build_product_catalog(bank: Bank) -> list[dict[str, Any]]:
    """One row per product: sku, name, product_line, price_usd, billing."""
    return [
        {"sku": p["sku"], "name": p["name"], "product_line": p["product_line"],
         "price_usd": f"{p['price_usd']:.2f}", "billing": p["billing"]}
        for p in bank.catalog["products"]
    ]


@dataclass(frozen=True)
class Account:
    account_id: str
    name: str
    tier: str
    is_vip: bool
    arr_usd: int
    region: str
    csm_email: str
    created_at: str
    domain: str
    contacts: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def row(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "name": self.name,
            "tier": self.tier,
            "is_vip": "true" if self.is_vip else "false",
            "arr_usd": self.arr_usd,
            "region": self.region,
            "csm_email": self.csm_email,
            "created_at": self.created_at,
        }


def build_accounts(bank: Bank, seed: int, n: int) -> list[Account]:
    """CRM accounts with tier, VIP flag (mostly enterprise), ARR consistent with the tier."""
    crm = bank.crm
    rng = Random(f"{seed}:crm")
    combos = [(h, t) for h in crm["company_heads"] for t in crm["company_tails"]]
    picks = rng.sample(combos, n)
    start = datetime(2019, 1, 1, tzinfo=timezone.utc)
    span = int((datetime(2026, 8, 31, tzinfo=timezone.utc) - start).total_seconds())
    accounts: list[Account] = []
    for i, (head, tail) in enumerate(picks, start=1):
        tier = weighted(rng, crm["tier_weights"])
        region = weighted(rng, crm["region_weights"])
        form = rng.choice(crm["legal_forms"][region])
        name = f"{head} {tail} {form}".strip()
        is_vip = rng.random() < crm["vip_share"][tier]
        arr_range = crm["arr_usd"][tier]
        arr = rng.randrange(*arr_range) if isinstance(arr_range, list) else arr_range
        if tier in crm["pooled_csm_tiers"]:
            csm = crm["pooled_csm_email"]
        else:
            csm = crm["csm_email"].format(csm=rng.choice(crm["csms"]))
        created = start + timedelta(seconds=rng.randrange(span))
        domain = crm["domain"].format(head=slug(head), tail=slug(tail)[:4], tld=rng.choice(crm["domain_tlds"]))
        contacts = tuple(
            (rng.choice(crm["first_names"]), rng.choice(crm["last_names"])) for _ in range(rng.randint(1, 4))
        )
        accounts.append(
            Account(
                account_id=f"ACC-{i:04d}",
                name=name,
                tier=tier,
                is_vip=is_vip,
                arr_usd=arr,
                region=region,
                csm_email=csm,
                created_at=iso(created),
                domain=domain,
                contacts=contacts,
            )
        )
    return accounts


def build_knowledge_base(bank: Bank) -> list[dict[str, str]]:
    """Help-centre articles: article_id, title, category, url, body."""
    kb = bank.knowledge_base
    return [
        {
            "article_id": f"KB-{i:03d}",
            "title": a["title"],
            "category": a["category"],
            "url": kb["url"].format(category=a["category"].replace("_", "-"), slug=slug(a["title"])),
            "body": a["body"],
        }
        for i, a in enumerate(kb["articles"], start=1)
    ]
