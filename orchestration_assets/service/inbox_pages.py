"""The reviewer inbox's pages: counts per family, a family's queue, one item and its decision form."""

from urllib.parse import quote, urlencode

import pandas as pd

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse

from ..family import Family
from . import inbox
from .accounts import User
from .security import check_csrf, signed_in
from .web import render

router = APIRouter(dependencies=[Depends(check_csrf)])


def item_url(family: str, record_id: str, reason: str | None = None) -> str:
    url = f"/families/{quote(family, safe='')}/items/{quote(record_id, safe='')}"
    return f"{url}?{urlencode({'reason': reason})}" if reason else url


def queue_url(family: str, reason: str | None = None) -> str:
    url = f"/families/{quote(family, safe='')}"
    return f"{url}?{urlencode({'reason': reason})}" if reason else url


def _family(request: Request, name: str, user: User) -> Family:
    family = request.app.state.families.get(name)
    # the same answer for a family that does not exist and one the user has no role in
    if family is None or user.role_in(name) is None:
        raise HTTPException(404, f"No family named {name!r} among the ones you review.")
    return family


def _item(request: Request, family: Family, record_id: str, user: User) -> inbox.Item:
    item = inbox.load_item(request.app.state.warehouse, family, record_id)
    if item is None or item.routing.get("decision") not in ("human_review", "escalate"):
        raise HTTPException(404, f"No review item {record_id!r} in {family.name}.")
    if item.is_escalation and not user.can(family.name, "lead"):
        raise HTTPException(403, f"{record_id!r} is an escalation: it needs the lead role in {family.name}.")
    return item


@router.get("/")
def home(request: Request, user: User = Depends(signed_in)):
    wh, families = request.app.state.warehouse, request.app.state.families
    rows = [inbox.summary(f, inbox.pending(wh, f, user, with_records=False))
            for name, f in sorted(families.items()) if user.role_in(name)]
    return render(request, "home.html", rows=rows, queue_url=queue_url)


@router.get("/families/{family}")
def queue(request: Request, family: str, reason: str = "", page: int = 1, user: User = Depends(signed_in)):
    fam, wh = _family(request, family, user), request.app.state.warehouse
    size = request.app.state.settings.queue_page_size
    everything = inbox.pending(wh, fam, user)
    items = inbox.with_reason(everything, reason or None)
    page = max(1, page)
    shown = items.iloc[(page - 1) * size: page * size]
    return render(request, "queue.html", family=fam, reason=reason, items=shown.to_dict(orient="records"),
                  total=len(items), page=page, pages=max(1, -(-len(items) // size)),
                  reasons=inbox.summary(fam, everything)["reasons"], recent=inbox.recent_decisions(wh, fam, user),
                  item_url=item_url, queue_url=queue_url, role=user.role_in(fam.name))


@router.get("/families/{family}/items/{record_id:path}")
def item_page(request: Request, family: str, record_id: str, reason: str = "", user: User = Depends(signed_in)):
    fam = _family(request, family, user)
    item = _item(request, fam, record_id, user)
    if item.decided is not None:
        return _decided(request, item, reason)
    return _form(request, item, reason)


@router.post("/families/{family}/items/{record_id:path}")
def decide(request: Request, family: str, record_id: str, action: str = Form(""), edited_text: str = Form(""),
           corrected_label: str = Form(""), note: str = Form(""), reason: str = Form(""),
           user: User = Depends(signed_in)):
    fam, wh = _family(request, family, user), request.app.state.warehouse
    item = _item(request, fam, record_id, user)
    try:
        row = inbox.decide(wh, fam, user, item, action, edited_text, corrected_label, note)
    except inbox.Forbidden as exc:
        raise HTTPException(403, str(exc)) from None
    except inbox.ReviewError as exc:
        fresh = inbox.load_item(wh, fam, record_id)
        if fresh is not None and fresh.decided is not None:  # decided by someone else meanwhile
            mine = fresh.decided.get("reviewer") == user.name  # e.g. the form sent twice
            return _decided(request, fresh, reason, status_code=409,
                            error="You already decided this item." if mine else
                            "Someone else decided this item first; your decision was not recorded.")
        return _form(request, item, reason, status_code=400, error=str(exc),
                     values={"edited_text": edited_text, "corrected_label": corrected_label, "note": note})
    request.session["flash"] = f"Recorded {row['decision']} on {record_id}."
    following = inbox.next_item(wh, fam, user, reason or None, after=record_id)
    target = item_url(fam.name, following, reason or None) if following else queue_url(fam.name, reason or None)
    return RedirectResponse(target, status_code=303)


def _form(request: Request, item: inbox.Item, reason: str, status_code: int = 200, error: str | None = None,
          values: dict | None = None):
    fam = item.family
    review = fam.spec.review
    draft = item.enriched.get(review.edit_task) if review.edit_task else None
    labels = list(fam.tasks[review.relabel_task].labels) if review.relabel_task else []
    text = [(f, item.enriched.get(f)) for f in fam.record.text]
    others = [(f, item.enriched.get(f)) for f in fam.record.fields if f not in fam.record.text and f != fam.id_field
              and item.enriched.get(f) is not None]
    return render(request, "item.html", status_code=status_code, family=fam, item=item, reason=reason,
                  text=text, fields=others, enrichment=inbox.enrichment(fam, item.enriched), draft=draft,
                  actions=list(review.actions), labels=labels, error=error,
                  current_label=item.enriched.get(review.relabel_task) if review.relabel_task else None,
                  values=values or {"edited_text": draft or "", "corrected_label": "", "note": ""},
                  age_hours=_age_hours(item), item_url=item_url, queue_url=queue_url)


def _decided(request: Request, item: inbox.Item, reason: str, status_code: int = 200, error: str | None = None):
    return render(request, "decided.html", status_code=status_code, family=item.family, item=item, reason=reason,
                  error=error, delivery=item.delivery, expects_delivery=inbox.expects_delivery(item.decided),
                  item_url=item_url, queue_url=queue_url)


def _age_hours(item: inbox.Item) -> float | None:
    queued = pd.to_datetime(item.routing.get("decided_at"), utc=True, errors="coerce", format="ISO8601")
    return None if pd.isna(queued) else round((pd.Timestamp.now(tz="UTC") - queued).total_seconds() / 3600, 1)
