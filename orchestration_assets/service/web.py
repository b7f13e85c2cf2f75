"""Rendering pages: one Jinja environment with autoescaping on, and the context every page gets."""

from pathlib import Path

import jinja2
import pandas as pd
from fastapi import Request
from fastapi.templating import Jinja2Templates

from .security import CSRF_FIELD, csrf_token

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"

# record text is hostile: every value is escaped, whatever the template's file name
_env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                          undefined=jinja2.StrictUndefined)
templates = Jinja2Templates(env=_env)


def _when(value) -> str:
    """A stored ISO timestamp as a reviewer reads it (minutes, UTC); the raw value when it is not one."""
    stamp = pd.to_datetime(value, utc=True, errors="coerce", format="ISO8601") if value is not None else None
    return "—" if value is None else (str(value) if pd.isna(stamp) else stamp.strftime("%Y-%m-%d %H:%M:%S UTC"))


_env.filters["when"] = _when


def render(request: Request, template: str, /, status_code: int = 200, headers: dict | None = None, **context):
    context.setdefault("user", getattr(request.state, "user", None))
    context.setdefault("flash", request.session.pop("flash", None) if "session" in request.scope else None)
    context["csrf_field"], context["csrf"] = CSRF_FIELD, csrf_token(request) if "session" in request.scope else ""
    return templates.TemplateResponse(request, template, context, status_code=status_code, headers=headers)


class SecurityHeaders:
    """ASGI middleware: pages are not framed, not sniffed, not cached, and load nothing from elsewhere."""

    HEADERS = [
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
        (b"content-security-policy", b"default-src 'self'; form-action 'self'; frame-ancestors 'none'"),
        (b"cache-control", b"no-store"),
    ]

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                present = {k.lower() for k, _ in message["headers"]}
                message["headers"] = [*message["headers"], *(h for h in self.HEADERS if h[0] not in present)]
            await send(message)

        await self.app(scope, receive, send_with_headers)
