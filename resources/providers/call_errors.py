"""How one failed call to an OpenAI-compatible endpoint is named: its kind, and what the router does with it.

``kind`` is the fallback reason an item records (``fallback:<kind>``); :data:`ERROR_KINDS` says
whether an attempt of that kind is retried and whether it counts toward the endpoint's cooldown.
Messages are scrubbed of secrets here, once, so nothing downstream can leak a key.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import re
import time
from typing import Any, Sequence


# kind -> (retryable, counts toward the endpoint's cooldown). invalid_output is retried only with a
# changed request when the model is deterministic (resources/router/calls.py); truncated and
# content_filter would come back the same; request_error is a 5xx whose body says the request is bad
ERROR_KINDS: dict[str, tuple[bool, bool]] = {
    "timeout": (True, True),
    "rate_limited": (True, True),
    "server_error": (True, True),
    "connection": (True, True),
    "malformed_response": (True, True),
    "invalid_output": (True, True),
    "truncated": (False, True),
    "content_filter": (False, False),
    "auth": (False, True),
    "client_error": (False, False),
    "request_error": (False, False),
}
# failures the same request would meet again: cached like answers when the model is deterministic
DETERMINISTIC_FAILURES = ("invalid_output", "truncated", "content_filter")
# a 500 whose body says so is the server refusing this request, not failing: resending cannot help.
# llama-cpp-python's server answers a body its pydantic model rejects (a json_schema response_format)
# with a 500 "1 validation error: ... Input should be 'text' or 'json_object'"
_REQUEST_ERROR_BODY = re.compile(
    r"not supported|unsupported|invalid|validation|input should be|unknown (?:param|field|argument)|unrecognized|"
    r"must be", re.I)


class ProviderCallError(Exception):
    """One failed attempt. ``kind`` is the fallback reason; the message never holds the key."""

    def __init__(self, kind: str, message: str, *, retry_after: float | None = None, tokens_in: int = 0,
                 tokens_out: int = 0, status: int | None = None) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.detail = message
        self.retry_after = retry_after
        self.tokens_in = tokens_in
        self.tokens_out = tokens_out
        self.status = status

    @property
    def retryable(self) -> bool:
        return ERROR_KINDS.get(self.kind, (False, False))[0]

    @property
    def endpoint_failure(self) -> bool:
        return ERROR_KINDS.get(self.kind, (False, False))[1]


def scrub(text: str, secrets: Sequence[str | None]) -> str:
    """``text`` with every secret replaced by ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` / ``Retry-After`` (seconds or an HTTP date)."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def classify_exception(exc: BaseException, secrets: Sequence[str | None] = ()) -> ProviderCallError:
    """Map an SDK/transport exception to a :class:`ProviderCallError` (message scrubbed)."""
    import openai

    if isinstance(exc, ProviderCallError):
        return exc
    msg = scrub(str(exc), secrets)[:300]
    if isinstance(exc, (asyncio.TimeoutError, openai.APITimeoutError)):
        return ProviderCallError("timeout", "no answer within the timeout")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status == 429:
            return ProviderCallError("rate_limited", f"HTTP 429: {msg}",
                                     retry_after=parse_retry_after(exc.response.headers), status=status)
        if status in (401, 403):  # the body may echo the key: never keep it
            return ProviderCallError("auth", f"HTTP {status}: authentication failed", status=status)
        if status >= 500:
            if status == 500 and _REQUEST_ERROR_BODY.search(msg):
                return ProviderCallError("request_error", f"HTTP {status} refusing the request: {msg}", status=status)
            return ProviderCallError("server_error", f"HTTP {status}: {msg}", status=status)
        if status == 408:
            return ProviderCallError("timeout", f"HTTP 408: {msg}", status=status)
        return ProviderCallError("client_error", f"HTTP {status}: {msg}", status=status)
    if isinstance(exc, openai.APIConnectionError):
        return ProviderCallError("connection", msg)
    if isinstance(exc, (openai.APIResponseValidationError, json.JSONDecodeError, ValueError)):
        return ProviderCallError("malformed_response", f"unparsable response: {type(exc).__name__}")
    return ProviderCallError("connection", f"{type(exc).__name__}: {msg}")


