"""Sign-in, sign-out and the accounts page."""

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse

from . import accounts
from .security import LoginLimiter, check_csrf, signed_in, start_session
from .web import render

router = APIRouter(dependencies=[Depends(check_csrf)])


def _safe_next(target: str) -> str:
    # only a path of this site: "//host" or "https://host" would send a signed-in user elsewhere
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


@router.get("/login")
def login_page(request: Request, next: str = "/"):
    return render(request, "signin.html", next=_safe_next(next), error=None, name="")


@router.post("/login")
def login(request: Request, name: str = Form(""), password: str = Form(""), next: str = Form("/")):
    limiter: LoginLimiter = request.app.state.login_limiter
    client = request.client.host if request.client else "unknown"
    wait = limiter.attempt(name.strip(), client)
    if wait is not None:
        raise HTTPException(429, f"Too many sign-in attempts. Wait {wait} seconds, then try again.",
                            headers={"Retry-After": str(wait)})
    user = accounts.authenticate(request.app.state.warehouse, name.strip(), password)
    if user is None:
        # one message for a wrong name, a wrong password and a disabled account: no hint which
        return render(request, "signin.html", status_code=401, next=_safe_next(next), name=name.strip(),
                      error="Wrong user name or password.")
    limiter.succeeded(user.name)
    start_session(request, user)
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout")
def logout(request: Request, user: accounts.User = Depends(signed_in)):
    accounts.end_sessions(request.app.state.warehouse, user.name)
    request.session.clear()
    request.session["flash"] = "You are signed out."
    return RedirectResponse("/login", status_code=303)


@router.get("/admin/users")
def users_page(request: Request, user: accounts.User = Depends(signed_in)):
    if not user.is_admin():
        raise HTTPException(403, "The accounts page needs the admin role.")
    # an admin of some families sees the roles in those families only
    scope = {f for f, r in user.roles.items() if r == "admin"}
    rows = []
    for u in accounts.list_users(request.app.state.warehouse):
        roles = {f: r for f, r in u.roles.items() if accounts.ANY_FAMILY in scope or f in scope}
        if roles or accounts.ANY_FAMILY in scope:
            rows.append({"name": u.name, "disabled": u.disabled, "roles": sorted(roles.items())})
    return render(request, "admin_users.html", rows=rows)
