"""Achievement pages: list, create and edit with live validation, enable, delete."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from accolade_server.console import forms, insights, messages
from accolade_server.console.backfills import start_options
from accolade_server.console.context import Console
from accolade_server.console.security import ConsoleRoute, Permission, Session
from accolade_server.domain.changes import ProgressPolicy
from accolade_server.domain.errors import Aborted, AccoladeError, NotFound
from accolade_server.domain.model import MUTABLE_FIELDS, Achievement, DefinitionStatus
from accolade_server.service.backfills import StartOptions
from accolade_server.store import samples

#: Recent events the editor reads to warn about properties no event has.
SAMPLE_EVENTS = 200


@dataclass(frozen=True, slots=True)
class Filter:
    """One filter of the list: a query parameter, its choices and its test."""

    name: str
    label: str
    choices: Callable[[list[Achievement]], list[tuple[str, str]]]
    keep: Callable[[Achievement, DefinitionStatus, str], bool]


def _categories(items: list[Achievement]) -> list[tuple[str, str]]:
    return [(c, c) for c in sorted({a.category for a in items if a.category})]


#: The list's filters, in display order; add one here to filter on another property.
def _health(status: DefinitionStatus) -> str:
    if status.broken_reason:
        return "broken"
    return "errors" if status.condition_error_count else "ok"


FILTERS = [
    Filter("category", "Category", _categories, lambda a, _s, v: a.category == v),
    Filter(
        "enabled",
        "State",
        lambda _items: [("yes", "enabled"), ("no", "disabled")],
        lambda a, _s, v: a.enabled == (v == "yes"),
    ),
    Filter(
        "health",
        "Health",
        lambda _items: [("broken", "broken"), ("errors", "condition errors"), ("ok", "ok")],
        lambda _a, status, v: _health(status) == v,
    ),
]
#: Query parameters of the list that a redirect back to it keeps.
LIST_PARAMS = frozenset({"q", "sort", *(f.name for f in FILTERS)})
SORTS: dict[str, tuple[str, Callable[[Achievement], Any]]] = {
    "id": ("id", lambda a: a.id),
    "title": ("title", lambda a: a.title.lower()),
    "category": ("category", lambda a: (a.category, a.id)),
    "points": ("points (most first)", lambda a: (-a.points, a.id)),
    "updated": ("last updated", lambda a: -(a.update_time.timestamp() if a.update_time else 0)),
}


async def all_achievements(console: Console) -> list[Achievement]:
    items: list[Achievement] = []
    token = ""
    while True:
        page = await console.services.achievements.list(
            category="", enabled=None, page_size=1000, page_token=token
        )
        items.extend(page.items)
        token = page.next_page_token
        if not token:
            return items


def _matches(a: Achievement, query: str) -> bool:
    q = query.lower()
    return q in a.id or q in a.title.lower() or q in a.description.lower()


def routes(console: Console) -> list[ConsoleRoute]:
    render = console.render
    service = console.services.achievements

    async def list_page(request: Request, session: Session | None) -> Response:
        items = await all_achievements(console)
        params = request.query_params
        query = params.get("q", "").strip()
        chosen = {f.name: params.get(f.name, "") for f in FILTERS}
        statuses = await service.statuses(items)
        shown = [
            a
            for a in items
            if (not query or _matches(a, query))
            and all(f.keep(a, statuses[a.id], chosen[f.name]) for f in FILTERS if chosen[f.name])
        ]
        sort = params.get("sort", "id")
        sort = sort if sort in SORTS else "id"
        shown.sort(key=SORTS[sort][1])
        context = {
            "items": shown,
            "statuses": statuses,
            "total": len(items),
            "query": query,
            "filters": [(f, f.choices(items), chosen[f.name]) for f in FILTERS],
            "sorts": [(k, label) for k, (label, _) in SORTS.items()],
            "sort": sort,
            "flash": messages.read(request, "flash"),
            "shown": urlencode([(k, v) for k, v in params.items() if k in LIST_PARAMS]),
        }
        if request.headers.get("hx-request") == "true":
            return render.page(request, "_achievement_table.html", context)
        return render.page(request, "achievements.html", context)

    def form_page(
        request: Request,
        values: forms.FormValues,
        *,
        creating: bool,
        errors: dict[str, str] | None = None,
        conflict: bool = False,
        flash: str = "",
        status: int = 200,
        health: DefinitionStatus | None = None,
        stats: object = None,
    ) -> Response:
        return render.page(
            request,
            "achievement_form.html",
            {
                "v": values,
                "creating": creating,
                "errors": errors or {},
                "conflict": conflict,
                "flash": flash,
                "position": forms.condition_position((errors or {}).get("rule-condition", "")),
                "aggregates": forms.AGGREGATES,
                "repeats": forms.REPEATS,
                "health": health,
                "stats": stats,
            },
            status,
        )

    def errors_of(exc: AccoladeError, values: forms.FormValues) -> dict[str, str]:
        return {forms.slot_of(exc.field, len(values.tiers)): exc.detail}

    async def new_form(request: Request, session: Session | None) -> Response:
        return form_page(request, forms.FormValues(), creating=True)

    async def edit_form(request: Request, session: Session | None) -> Response:
        try:
            a = await service.get(request.path_params["id"])
        except AccoladeError as exc:
            return console.error_page(request, exc)
        flash = "Saved." if request.query_params.get("saved") else ""
        return form_page(
            request,
            forms.from_achievement(a),
            creating=False,
            flash=flash,
            health=await service.status(a),
            stats=await insights.achievement_stats(console, a.id),
        )

    async def validate(request: Request, session: Session | None) -> Response:
        values = forms.from_form(await request.form())
        creating = request.query_params.get("mode") != "edit"
        errors: dict[str, str] = {}
        try:
            await service.validate(forms.to_achievement(values), replacing=not creating)
        except AccoladeError as exc:
            errors = errors_of(exc, values)
        warnings = await property_warnings(values) if not errors else {}
        return render.page(
            request,
            "_validation.html",
            {
                "errors": errors,
                "warnings": warnings,
                "slots": forms.all_slots(len(values.tiers)),
                "position": forms.condition_position(errors.get("rule-condition", "")),
            },
        )

    async def property_warnings(values: forms.FormValues) -> dict[str, str]:
        """Properties the rule reads that no recent event of its types has (a typo, often)."""
        types = forms.split_list(values.event_types)
        async with console.services.uow.transaction() as repo:
            sampled, seen = await samples.property_paths(repo, types, limit=SAMPLE_EVENTS)
        if not sampled:
            return {}
        known = ", ".join(sorted(seen)[:12]) or "none"
        warnings = {}
        read = {"rule-condition": forms.condition_properties(values.condition)}
        if values.field and values.aggregate in ("sum", "max", "distinct"):
            read["rule-field"] = [values.field]
        for slot, paths in read.items():
            missing = [p for p in paths if p not in seen]
            if missing:
                warnings[slot] = (
                    f"no recent {' or '.join(types)} event has property "
                    f"{', '.join(missing)} (the last {sampled} have: {known})"
                )
        return warnings

    async def create(request: Request, session: Session | None) -> Response:
        form = await request.form()
        values = forms.from_form(form)
        try:
            created = await service.create(
                forms.to_achievement(values), backfill=start_options(form, session)
            )
        except AccoladeError as exc:
            return form_page(
                request, values, creating=True, errors=errors_of(exc, values), status=422
            )
        if created.backfill is not None:
            return RedirectResponse(f"{request.scope['root_path']}/backfills", status_code=303)
        return RedirectResponse(
            f"{request.scope['root_path']}/achievements/{created.achievement.id}?saved=1",
            status_code=303,
        )

    async def save(request: Request, session: Session | None) -> Response:
        form = await request.form()
        values = forms.from_form(form)
        achievement_id = request.path_params["id"]
        values = dataclasses.replace(values, id=achievement_id)
        etag = "" if form.get("overwrite") else values.etag
        try:
            a = forms.to_achievement(values)
            patch = {name: getattr(a, name) for name in MUTABLE_FIELDS}
            policy = str(form.get("progress_policy") or "")
            progress_policy = ProgressPolicy(policy) if policy else ProgressPolicy.UNSPECIFIED
            backfill = start_options(form, session)
            if backfill is None and progress_policy.recomputes:
                backfill = StartOptions(actor=session.actor if session else "")
            saved = await service.update(
                achievement_id, patch, etag=etag, progress_policy=progress_policy, backfill=backfill
            )
        except Aborted:
            return form_page(request, values, creating=False, conflict=True, status=409)
        except NotFound as exc:
            return console.error_page(request, exc)
        except AccoladeError as exc:
            return form_page(
                request, values, creating=False, errors=errors_of(exc, values), status=422
            )
        if saved.backfill is not None:
            return RedirectResponse(f"{request.scope['root_path']}/backfills", status_code=303)
        return RedirectResponse(
            f"{request.scope['root_path']}/achievements/{achievement_id}?saved=1", status_code=303
        )

    def back_to_list(request: Request, form: FormData, message: str) -> Response:
        """The list as it was shown (search, filters, sort), with a message."""
        shown = form.get("shown")
        params = dict(parse_qsl(shown if isinstance(shown, str) else ""))
        params = {k: v for k, v in params.items() if k in LIST_PARAMS}
        params |= messages.signed(request, flash=message)
        return RedirectResponse(
            f"{request.scope['root_path']}/achievements?{urlencode(params)}", status_code=303
        )

    async def set_enabled(request: Request, session: Session | None) -> Response:
        form = await request.form()
        achievement_id = request.path_params["id"]
        enabled = form.get("enabled") == "true"
        try:
            await service.update(achievement_id, {"enabled": enabled}, etag="")
        except AccoladeError as exc:
            return console.error_page(request, exc)
        state = "enabled" if enabled else "disabled"
        return back_to_list(request, form, f"{achievement_id} {state}")

    async def confirm_delete(request: Request, session: Session | None) -> Response:
        try:
            a = await service.get(request.path_params["id"])
        except AccoladeError as exc:
            return console.error_page(request, exc)
        return render.page(request, "achievement_delete.html", {"a": a})

    async def delete(request: Request, session: Session | None) -> Response:
        form = await request.form()
        achievement_id = request.path_params["id"]
        etag = form.get("etag")
        try:
            await service.delete(
                achievement_id,
                etag=etag if isinstance(etag, str) else "",
                force=form.get("force") == "on",
            )
        except AccoladeError as exc:
            return console.error_page(request, exc)
        return back_to_list(request, form, f"{achievement_id} deleted")

    r = console.route
    return [
        r("/achievements", list_page, Permission.READ),
        r("/achievements/new", new_form, Permission.ADMIN),
        r("/achievements/new", create, Permission.ADMIN, methods=["POST"]),
        r("/achievements/validate", validate, Permission.ADMIN, methods=["POST"]),
        r("/achievements/{id}", edit_form, Permission.READ),
        r("/achievements/{id}", save, Permission.ADMIN, methods=["POST"]),
        r("/achievements/{id}/enabled", set_enabled, Permission.ADMIN, methods=["POST"]),
        r("/achievements/{id}/delete", confirm_delete, Permission.ADMIN),
        r("/achievements/{id}/delete", delete, Permission.ADMIN, methods=["POST"]),
    ]
