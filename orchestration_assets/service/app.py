"""The service's FastAPI app: the reviewer pages, the sign-in pages and (beside them) the ingest API.

    app = create_app(load_settings())

One process holds the settings, the warehouse, the families loaded from the defs folder and the
sign-in limiter in ``app.state``; every request reads the warehouse afresh, so the CLI, the launchpad
and the Dagster sensors see the same rows.
"""

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from resources.warehouse import Warehouse

from ..family import Family
from ..loading import load_families
from . import accounts, errors
from .auth_pages import router as auth_router
from .inbox_pages import router as inbox_router
from .ingest import ingest_router
from .security import LoginLimiter
from .settings import ServiceSettings
from .web import STATIC, SecurityHeaders

SESSION_COOKIE = "review_session"


def create_app(settings: ServiceSettings, families: list[Family] | None = None) -> FastAPI:
    """The app on ``settings``; ``families``: already loaded ones (default: those of the settings' defs folder)."""
    app = FastAPI(title="Review service", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.warehouse = Warehouse(url=settings.warehouse_url)
    app.state.families = {f.name: f for f in (families if families is not None else load_families(settings.defs_folder))}
    app.state.login_limiter = LoginLimiter(settings.login_limit_per_user, settings.login_limit_per_client)
    accounts.ensure_tables(app.state.warehouse)
    # Starlette's signed cookie: HttpOnly always, SameSite=Lax, expires after the max age
    app.add_middleware(SessionMiddleware, secret_key=settings.secret_key.get_secret_value(),
                       session_cookie=SESSION_COOKIE, max_age=settings.session_max_age_s, same_site="lax",
                       https_only=settings.https_only)
    app.add_middleware(SecurityHeaders)
    errors.install(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(auth_router)
    app.include_router(inbox_router)
    app.include_router(ingest_router(settings, families=app.state.families))
    return app
