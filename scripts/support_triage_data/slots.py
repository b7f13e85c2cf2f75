"""The ``{slot}`` values of one ticket, drawn on first use so a repeated slot stays consistent."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from random import Random
from typing import Callable

from .bank import Bank
from .draw import money


class Slots(dict):
    """Slot values for one ticket, generated on first use (``str.format_map`` fills templates)."""

    def __init__(self) -> None:
        super().__init__()
        self.gens: dict[str, Callable[[], str]] = {}

    def __missing__(self, key: str) -> str:
        value = self.gens[key]()
        self[key] = value
        return value


def slot_generators(
    bank: Bank, rng: Random, slots: Slots, created: datetime, email: str, first: str, last: str
) -> dict[str, Callable[[], str]]:
    """One generator per slot name; the values come from ``text/slots.yaml`` and ``catalog.yaml``."""
    s, cat = bank.slots, bank.catalog

    def pick(key: str) -> Callable[[], str]:
        return lambda: rng.choice(s[key])

    def date() -> str:
        # no strftime month names: they depend on the process locale
        d = created - timedelta(days=rng.randint(1, 30))
        month = s["month_names"][d.month - 1]
        values = {"mon": month[:3], "month": month, "day": d.day, "iso": f"{d:%Y-%m-%d}",
                  "mm": f"{d.month:02d}", "dd": f"{d.day:02d}"}
        return rng.choice([f.format(**values) for f in s["date_formats"]])

    def amount() -> str:
        return money(round(rng.uniform(19, 2400), 2), rng, s["money_formats"])

    def amount_small() -> str:
        return money(round(rng.uniform(9, 180), 2), rng, s["money_formats"])

    def refund_amount() -> str:
        if rng.random() < 0.3:
            return money(round(rng.uniform(520, 4800), 2), rng, s["money_formats"])
        return money(round(rng.uniform(15, 480), 2), rng, s["money_formats"])

    def order() -> str:
        n = rng.randint(40000, 99999)
        return rng.choice([f.format(n=n) for f in s["order_formats"]])

    def tracking() -> str:
        # {alnumN}: N characters of a tracking alphabet; {nN}: an N-digit number
        formats = s["tracking_formats"]
        fmt = formats.get(slots["carrier"], formats["default"])
        m = re.search(r"\{(alnum|n)(\d+)\}", fmt)
        if m is None:
            return fmt
        width = int(m.group(2))
        if m.group(1) == "alnum":
            value = "".join(rng.choice(s["tracking_alphabet"]) for _ in range(width))
        else:
            value = str(rng.randint(10 ** (width - 1), 10**width - 1))
        return fmt[: m.start()] + value + fmt[m.end():]

    def phone() -> str:
        n2, n3 = rng.randint(10, 99), rng.randint(100, 999)
        return rng.choice([f.format(n2=n2, n3=n3) for f in s["phone_formats"]])

    def device_other() -> str:
        return rng.choice([d for d in cat["devices"] if d != slots["device"]])

    def seats_small() -> str:
        return str(max(1, int(slots["seats"]) - rng.randint(2, 40)))

    def qty_small() -> str:
        return str(rng.randint(1, int(slots["qty"]) - 1))

    def personal_email() -> str:
        return s["personal_email"].format(first=first.lower(), last=last.lower(), n=rng.randint(1, 99))

    return {
        "invoice": lambda: f"INV-2026-{rng.randint(100, 99999):05d}",
        "order": order,
        "amount": amount,
        "amount_small": amount_small,
        "refund_amount": refund_amount,
        "last4": lambda: f"{rng.randint(0, 9999):04d}",
        "po": lambda: f"PO-{rng.randint(10000, 99999)}",
        "plan": lambda: rng.choice(cat["plans"]),
        "addon": lambda: rng.choice(cat["addons"]),
        "service": lambda: rng.choice(cat["services"]),
        "device": lambda: rng.choice(cat["devices"]),
        "device_other": device_other,
        "product": lambda: rng.choice(cat["plans"] + cat["addons"]),
        "seats": lambda: str(rng.randint(8, 250)),
        "seats_small": seats_small,
        "qty": lambda: str(rng.randint(3, 40)),
        "qty_small": qty_small,
        "date": date,
        "month": pick("months"),
        "time": lambda: f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}",
        "days": lambda: str(rng.randint(3, 12)),
        "hours": lambda: str(rng.randint(2, 30)),
        "country": pick("countries"),
        "carrier": pick("carriers"),
        "tracking": tracking,
        "address": lambda: f"{rng.randint(1, 400)} {rng.choice(s['streets'])}, {rng.choice(s['cities'])}",
        "error": pick("errors"),
        "error_auth": pick("auth_errors"),
        "status": pick("statuses"),
        "browser": pick("browsers"),
        "os": pick("oses"),
        "app": pick("apps"),
        "feature": pick("features"),
        "idp": pick("idps"),
        "cve": pick("cves"),
        "ip": lambda: rng.choice(s["ip_prefixes"]) + str(rng.randint(1, 254)),
        "request_id": lambda: "req_" + "".join(rng.choice("0123456789abcdef") for _ in range(16)),
        "endpoint": pick("endpoints"),
        "n_users": lambda: str(rng.randint(2, 60)),
        "n_records": lambda: f"{rng.randint(50, 900) * 1000:,}",
        "n_exports": lambda: str(rng.randint(12, 300)),
        "workspace": pick("workspaces"),
        "prev_ticket": lambda: f"T-{rng.randint(90000, 99999)}",
        "agent": pick("agents"),
        "login_email": lambda: email,
        "personal_email": personal_email,
        "phone": phone,
        "card": pick("cards"),
        "iban": pick("ibans"),
        "bic": pick("bics"),
    }
