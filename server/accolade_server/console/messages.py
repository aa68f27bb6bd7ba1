"""Messages a form's redirect hands to the page it lands on ("Granted helper", an error).

They travel in the query string, so each carries a MAC keyed by the session token (which
only the signed-in browser holds, in an HttpOnly cookie): a link someone else made cannot
make the console show its text, and a message shows only in the session that caused it.
Nothing is stored, so every replica can check a message any replica made.
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import Request

from accolade_server.console.security import session_of

#: The messages a redirect may carry, each with its MAC in `<name>_mac`.
KINDS = ("flash", "error")


def _mac(token: str, kind: str, text: str) -> str:
    key = b"accolade-console-flash:" + token.encode()
    return hmac.new(key, f"{kind}\0{text}".encode(), hashlib.sha256).hexdigest()[:32]


def signed(request: Request, **messages: str) -> dict[str, str]:
    """Query parameters carrying `messages` (flash=…, error=…) to the next page of this
    session; a request without a session gets none (the page would not show them)."""
    session = session_of(request)
    if session is None:
        return {}
    params: dict[str, str] = {}
    for kind, text in messages.items():
        if kind not in KINDS:
            raise ValueError(f"unknown console message kind {kind!r}")
        params[kind] = text
        params[f"{kind}_mac"] = _mac(session.token, kind, text)
    return params


def read(request: Request, kind: str) -> str:
    """The `kind` message of this request's query string if this session signed it, else ""."""
    session = session_of(request)
    text = request.query_params.get(kind, "")
    sent = request.query_params.get(f"{kind}_mac", "")
    if session is None or not text or not sent:
        return ""
    return text if hmac.compare_digest(sent, _mac(session.token, kind, text)) else ""
