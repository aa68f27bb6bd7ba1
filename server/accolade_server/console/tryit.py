"""Try it: send a test event and see which conditions matched and what it caused."""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from accolade_server.console.context import Console
from accolade_server.console.security import ConsoleRoute, Permission, Session
from accolade_server.domain.errors import AccoladeError, InvalidArgument
from accolade_server.rules import engine
from accolade_server.service.tracking import EventInput


@dataclass(frozen=True, slots=True)
class Check:
    achievement_id: str
    title: str
    outcome: str  # matched, not matched, outside window, error
    detail: str


def _as_struct_values(value: Any) -> Any:
    """JSON as the gRPC API delivers it (a Struct): every number a float."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dict):
        return {str(k): _as_struct_values(v) for k, v in value.items()}
    return [_as_struct_values(v) for v in value]


def parse_properties(text: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        value = json.loads(text, parse_constant=lambda name: math.nan)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(
            f"is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", field="properties"
        ) from exc
    if not isinstance(value, dict):
        raise InvalidArgument('must be a JSON object, like {"amount": 42}', field="properties")
    if any(isinstance(v, float) and not math.isfinite(v) for v in _numbers(value)):
        raise InvalidArgument("numbers must be finite (no NaN or Infinity)", field="properties")
    result: dict[str, Any] = _as_struct_values(value)
    return result


def _numbers(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return [value]


def checks_for(event: engine.Event, rules: engine.RuleSet) -> list[Check]:
    """What the rule engine decides for each achievement the event's type feeds (pure)."""
    matched = engine.match(event, rules)
    contributions = {c.achievement_id: c for c in matched.contributions}
    errors = {e.achievement_id: e.message for e in matched.errors}
    checks = []
    for compiled in rules.by_type.get(event.type, []):
        a = compiled.achievement
        if not engine.in_window(a, event.occurred_at):
            outcome, detail = "outside window", "the event is outside the active window"
        elif a.id in contributions:
            c = contributions[a.id]
            outcome = "matched"
            detail = f"adds {c.amount:g}" if a.rule.aggregate.value in ("sum", "max") else "counts"
        elif a.id in errors:
            outcome, detail = "error", errors[a.id]
        else:
            outcome, detail = "not matched", f"condition is false: {a.rule.condition}"
        checks.append(Check(a.id, a.title, outcome, detail))
    return checks


def routes(console: Console) -> list[ConsoleRoute]:
    render = console.render
    services = console.services

    async def page(request: Request, session: Session | None) -> Response:
        return render.page(
            request,
            "try.html",
            {"values": {"user_id": "", "type": "", "properties": ""}, "outcome": None},
        )

    async def send(request: Request, session: Session | None) -> Response:
        form = await request.form()
        values = {
            name: (v.strip() if isinstance(v := form.get(name, ""), str) else "")
            for name in ("user_id", "type", "properties")
        }
        outcome: dict[str, Any] = {"error": "", "field": ""}
        try:
            item = EventInput(
                event_id=f"console-{uuid.uuid4().hex}",
                user_id=values["user_id"],
                type=values["type"],
                properties=parse_properties(values["properties"]),
                occurred_at=None,
            )
            event = services.tracking.validate(item, datetime.now(UTC))
            async with services.uow.transaction() as repo:
                rules = await services.tracking.rules.get(repo)
            checks = checks_for(event, rules)
            result = await services.tracking.track(item)
            outcome.update(
                event_id=item.event_id,
                checks=checks,
                tracked=result.tracked,
                awards=result.awards,
                progress=result.progress,
            )
        except AccoladeError as exc:
            outcome.update(error=exc.detail, field=exc.field or "")
        template = "_try_result.html" if request.headers.get("hx-request") else "try.html"
        status = 422 if outcome["error"] else 200
        return render.page(request, template, {"values": values, "outcome": outcome}, status)

    r = console.route
    return [
        r("/try", page, Permission.ADMIN),
        r("/try", send, Permission.ADMIN, methods=["POST"]),
    ]
