"""Points on the user page: entitlements and the points ledger (shown with progress), and
redeeming and refunding for admins."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from accolade_server.console import messages
from accolade_server.console.context import Console
from accolade_server.console.security import ConsoleRoute, Permission, Session
from accolade_server.domain.errors import AccoladeError, InvalidArgument
from accolade_server.service.points import PointsService

LEDGER = 100


def _service(console: Console) -> PointsService:
    points = console.services.points
    assert points is not None, "the HTTP app is built with the points service"
    return points


async def user_context(console: Console, user_id: str) -> dict[str, Any]:
    """What the user page shows of points besides the balances: the active entitlements,
    the newest ledger entries, and a fresh redemption id for the redeem form (a form sent
    twice redeems once)."""
    points = _service(console)
    page = await points.ledger(user_id, page_size=LEDGER, page_token="")
    return {
        "entitlements": await points.entitlements(user_id),
        "ledger": page.entries,
        "new_redemption_id": f"console-{uuid.uuid4().hex}",
    }


def routes(console: Console) -> list[ConsoleRoute]:
    def back(request: Request, user_id: str, **message: str) -> Response:
        query = urlencode({"user_id": user_id, **messages.signed(request, **message)})
        return RedirectResponse(f"{request.scope['root_path']}/users?{query}", status_code=303)

    async def fields(request: Request) -> dict[str, str]:
        form = await request.form()
        return {k: v.strip() for k, v in form.items() if isinstance(v, str)}

    async def redeem(request: Request, session: Session | None) -> Response:
        assert session is not None  # an ADMIN route
        f = await fields(request)
        user_id = f.get("user_id", "")
        try:
            text = f.get("points", "")
            if not text.isdigit():
                raise InvalidArgument("must be a whole number of at least 1", field="points")
            done = await _service(console).redeem(
                f.get("redemption_id", ""),
                user_id,
                int(text),
                reason=f.get("reason", ""),
                reward_id=f.get("reward_id", ""),
                actor=session.actor,
            )
        except AccoladeError as exc:
            return back(request, user_id, error=str(exc))
        r = done.redemption
        flash = (
            f"Already redeemed as {r.redemption_id}; nothing changed"
            if done.replayed
            else f"Redeemed {r.points} points as {r.redemption_id}"
        )
        return back(request, user_id, flash=flash)

    async def refund(request: Request, session: Session | None) -> Response:
        assert session is not None  # an ADMIN route
        f = await fields(request)
        user_id = f.get("user_id", "")
        try:
            done = await _service(console).refund(
                f.get("redemption_id", ""), reason=f.get("reason", ""), actor=session.actor
            )
        except AccoladeError as exc:
            return back(request, user_id, error=str(exc))
        r = done.redemption
        flash = (
            f"{r.redemption_id} was refunded before; nothing changed"
            if done.replayed
            else f"Refunded {r.points} points of {r.redemption_id}"
        )
        return back(request, r.user_id, flash=flash)

    r = console.route
    return [
        r("/users/redeem", redeem, Permission.ADMIN, methods=["POST"]),
        r("/users/refund", refund, Permission.ADMIN, methods=["POST"]),
    ]
