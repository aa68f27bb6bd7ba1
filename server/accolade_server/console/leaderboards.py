"""Leaderboards: the list, defining and editing boards, a board page by page, a user's rank."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote, urlencode

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from accolade_server.console import messages
from accolade_server.console.context import Console
from accolade_server.console.security import ConsoleRoute, Permission, Session
from accolade_server.domain.errors import AccoladeError, InvalidArgument
from accolade_server.domain.leaderboards import Leaderboard, Metric, Period
from accolade_server.service.leaderboards import LeaderboardService

PAGE_SIZE = 25
AROUND = 5
METRICS = [
    (Metric.LIFETIME_POINTS, "lifetime points"),
    (Metric.PERIOD_POINTS, "points earned in the period"),
    (Metric.ACHIEVEMENT_VALUE, "an achievement's value"),
]
PERIODS = [
    (Period.ALL_TIME, "all time"),
    (Period.DAILY, "daily"),
    (Period.WEEKLY, "weekly"),
    (Period.MONTHLY, "monthly"),
]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def _text(form: FormData, name: str) -> str:
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def board_from_form(form: FormData) -> Leaderboard:
    try:
        metric = Metric(_text(form, "metric"))
    except ValueError:
        raise InvalidArgument("choose what is counted", field="leaderboard.metric") from None
    try:
        period = Period(_text(form, "period") or "all_time")
    except ValueError:
        raise InvalidArgument("is not a known period", field="leaderboard.period") from None
    week_start = _text(form, "week_start") or "1"
    return Leaderboard(
        id=_text(form, "id"),
        metric=metric,
        period=period,
        title=_text(form, "title"),
        description=_text(form, "description"),
        achievement_id=_text(form, "achievement_id") if metric is Metric.ACHIEVEMENT_VALUE else "",
        week_start=int(week_start) if week_start.isdigit() else 0,
        time_zone=_text(form, "time_zone"),
        filter_attribute=_text(form, "filter_attribute"),
        filter_value=_text(form, "filter_value"),
    )


def describe(board: Leaderboard) -> str:
    what = dict(METRICS)[board.metric]
    if board.metric is Metric.ACHIEVEMENT_VALUE:
        what = f"value of {board.achievement_id}"
    when = dict(PERIODS)[board.period]
    if board.period is Period.WEEKLY:
        when += f" from {WEEKDAYS[board.week_start - 1]}"
    if board.period is not Period.ALL_TIME:
        when += f" ({board.time_zone or 'UTC'})"
    only = (
        f", only {board.filter_attribute} = {board.filter_value}" if board.filter_attribute else ""
    )
    return f"{what}, {when}{only}"


def routes(console: Console) -> list[ConsoleRoute]:
    render = console.render

    def service() -> LeaderboardService:
        boards = console.services.leaderboards
        assert boards is not None, "the HTTP app is built with the leaderboard service"
        return boards

    def listing(request: Request) -> str:
        return f"{request.scope['root_path']}/leaderboards"

    def back(request: Request, target: str, **message: str) -> Response:
        """To `target` with a message for this session (see `messages`)."""
        query = urlencode(messages.signed(request, **message))
        return RedirectResponse(f"{target}?{query}", status_code=303)

    async def index(request: Request, session: Session | None, **extra: object) -> Response:
        found = await service().list(page_size=1000, page_token="")
        context: dict[str, object] = {
            "boards": [(b, describe(b)) for b in found.boards],
            "metrics": [(m.value, label) for m, label in METRICS],
            "periods": [(p.value, label) for p, label in PERIODS],
            "weekdays": list(enumerate(WEEKDAYS, start=1)),
            "form": {},
            "flash": messages.read(request, "flash"),
            "error": "",
            **extra,
        }
        return render.page(request, "leaderboards.html", context, status=400 if extra else 200)

    async def create(request: Request, session: Session | None) -> Response:
        form = await request.form()
        try:
            board = await service().create(board_from_form(form))
        except AccoladeError as exc:
            return await index(request, session, error=str(exc), form=dict(form))
        return back(request, f"{listing(request)}/{quote(board.id)}", flash=f"Defined {board.id}")

    async def show(request: Request, session: Session | None) -> Response:
        board_id = request.path_params["id"]
        q = request.query_params
        user_id = q.get("user_id", "").strip()
        try:
            period_start = datetime.fromisoformat(q["period"]) if q.get("period") else None
        except ValueError:
            period_start = None
        try:
            board = await service().get(board_id)
            view = await service().board(
                board_id,
                period_start=period_start,
                page_size=PAGE_SIZE,
                page_token=q.get("page_token", ""),
            )
            rank = None
            if user_id:
                rank = await service().rank(
                    board_id, user_id=user_id, around=AROUND, user_ids=(), period_start=period_start
                )
        except AccoladeError as exc:
            return console.error_page(request, exc)
        context = {
            "board": board,
            "summary": describe(board),
            "view": view,
            "rank": rank,
            "user_id": user_id,
            "period": q.get("period", ""),
            "previous_period": _before(view.period[0]) if view.period else "",
            "flash": messages.read(request, "flash"),
            "error": messages.read(request, "error"),
        }
        return render.page(request, "leaderboard.html", context)

    async def edit(request: Request, session: Session | None) -> Response:
        board_id = request.path_params["id"]
        form = await request.form()
        target = f"{listing(request)}/{quote(board_id)}"
        try:
            stored = await service().get(board_id)
            changed = Leaderboard(
                id=board_id,
                metric=stored.metric,
                title=_text(form, "title"),
                description=_text(form, "description"),
            )
            await service().update(changed, ["title", "description"])
        except AccoladeError as exc:
            return back(request, target, error=str(exc))
        return back(request, target, flash="Saved")

    async def delete(request: Request, session: Session | None) -> Response:
        board_id = request.path_params["id"]
        try:
            await service().delete(board_id)
        except AccoladeError as exc:
            target = f"{listing(request)}/{quote(board_id)}"
            return back(request, target, error=str(exc))
        return back(request, listing(request), flash=f"Deleted {board_id}")

    async def index_page(request: Request, session: Session | None) -> Response:
        return await index(request, session)

    r = console.route
    return [
        r("/leaderboards", index_page, Permission.READ),
        r("/leaderboards", create, Permission.ADMIN, methods=["POST"]),
        r("/leaderboards/{id}", show, Permission.READ),
        r("/leaderboards/{id}/edit", edit, Permission.ADMIN, methods=["POST"]),
        r("/leaderboards/{id}/delete", delete, Permission.ADMIN, methods=["POST"]),
    ]


def _before(start: datetime) -> str:
    """An instant in the period before the one starting at `start`."""
    return datetime.fromtimestamp(start.timestamp() - 1, start.tzinfo).isoformat()
