"""Who is signed in, CSRF tokens on every form, and sign-in rate limits.

The session is Starlette's signed cookie (itsdangerous): it holds the user name, the account's
``session_epoch`` at sign-in and the CSRF token, never a password or a hash. Each request re-reads
the account, so a disabled account or a sign-out elsewhere ends the session at once.

Sign-in attempts are counted in memory (``limits``' moving window) per user name and per client
address: right for one service process; several processes behind a balancer would each count
their own share (use a ``limits`` Redis storage then).
"""

import secrets
import time

from fastapi import HTTPException, Request
from limits import parse, storage, strategies

from .accounts import User, get_user

CSRF_FIELD = "csrf_token"


class NotSignedIn(Exception):
    """A page needs a signed-in user; the handler sends the browser to the sign-in page."""


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use."""
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


async def check_csrf(request: Request) -> None:
    """Every form POST carries the session's token in a hidden field; anything else is refused (403)."""
    if request.method != "POST":
        return
    form = await request.form()
    sent, expected = form.get(CSRF_FIELD), request.session.get("csrf")
    if not isinstance(sent, str) or not expected or not secrets.compare_digest(sent, expected):
        raise HTTPException(403, "This form has expired or did not come from this site. Reload the page and "
                                 "try again.")


def current_user(request: Request) -> User | None:
    name, epoch = request.session.get("user"), request.session.get("epoch")
    if not name:
        return None
    user = get_user(request.app.state.warehouse, name)
    if user is None or user.disabled or user.session_epoch != epoch:
        request.session.pop("user", None)
        request.session.pop("epoch", None)
        return None
    return user


def signed_in(request: Request) -> User:
    """FastAPI dependency: the signed-in user, or the sign-in page."""
    user = current_user(request)
    if user is None:
        raise NotSignedIn()
    request.state.user = user
    return user


def start_session(request: Request, user: User) -> None:
    # a fresh session: nothing from before sign-in (its CSRF token included) carries over
    request.session.clear()
    request.session.update({"user": user.name, "epoch": user.session_epoch, "csrf": secrets.token_urlsafe(32)})


class LoginLimiter:
    """Sign-in attempts per user name and per client address, in a moving window."""

    def __init__(self, per_user: str, per_client: str) -> None:
        self._limiter = strategies.MovingWindowRateLimiter(storage.MemoryStorage())
        self.per_user, self.per_client = parse(per_user), parse(per_client)

    def attempt(self, name: str, client: str) -> int | None:
        """Count one attempt; None when allowed, else the seconds until the next one is."""
        for limit, key in ((self.per_client, ("client", client)), (self.per_user, ("user", name.lower()))):
            if not self._limiter.hit(limit, *key):
                reset = self._limiter.get_window_stats(limit, *key).reset_time
                return max(1, int(reset - time.time()) + 1)
        return None

    def succeeded(self, name: str) -> None:
        """A good password clears the name's count (the client's stays: it may be guessing many names)."""
        self._limiter.clear(self.per_user, "user", name.lower())
