"""Error pages: a rendered page with a plain reason, never a stack trace, a secret or a form's content."""

import logging
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.exceptions import HTTPException

from .security import NotSignedIn
from .web import render

log = logging.getLogger("orchestration_assets.service")
TITLES = {400: "Bad request", 401: "Not signed in", 403: "Not allowed", 404: "Not found", 405: "Not allowed",
          409: "Already decided", 413: "Request too large", 429: "Too many attempts", 500: "Something went wrong"}


def wants_json(request: Request) -> bool:
    # the JSON API answers in JSON; pages (and anything a browser asks for) get a page
    return request.url.path.startswith("/api/")


def error_page(request: Request, status: int, message: str, headers: dict | None = None):
    if wants_json(request):
        return JSONResponse({"error": message}, status_code=status, headers=headers)
    return render(request, "error.html", status_code=status, headers=headers, status=status,
                  title=TITLES.get(status, "Error"), message=message)


def install(app: FastAPI) -> None:
    @app.exception_handler(NotSignedIn)
    async def _not_signed_in(request: Request, exc: NotSignedIn):
        if request.method == "GET":
            here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?{urlencode({'next': here})}", status_code=303)
        return error_page(request, 401, "Sign in first.")

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException):
        message = exc.detail if isinstance(exc.detail, str) and exc.status_code != 500 else TITLES.get(exc.status_code, "")
        return error_page(request, exc.status_code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        # name the field and the reason, never echo the value (it may be a password)
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', [])[1:]) or 'request'}: {e.get('msg', '')}"
                             for e in exc.errors())
        return error_page(request, 400, f"The request is not valid: {problems}")

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception):
        # the operator gets the exception type and where, in the server log; the user a plain page
        log.error("%s %s failed: %s", request.method, request.url.path, type(exc).__name__,
                  exc_info=(type(exc), exc, exc.__traceback__))
        return error_page(request, 500, "The service could not complete this request; it has been logged.")
