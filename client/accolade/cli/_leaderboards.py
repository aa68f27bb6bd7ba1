"""`accolade leaderboard …`: list boards, show a page of one, a user's rank."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from accolade.cli import _render as render
from accolade.cli._verbs import client
from accolade.v1 import leaderboards_pb2 as lpb


def _score(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


def _entries(entries: Sequence[lpb.LeaderboardEntry], mark: str = "") -> None:
    render.table(
        ("RANK", "USER", "NAME", "SCORE", "REACHED"),
        [
            (
                f"{e.rank}{' <' if e.user_id == mark else ''}",
                e.user_id,
                e.display_name or "-",
                _score(e.score),
                e.reached_time.ToDatetime().isoformat(timespec="seconds") + "Z",
            )
            for e in entries
        ],
    )


def _period(args: argparse.Namespace) -> datetime | None:
    if not args.period:
        return None
    try:
        return datetime.fromisoformat(args.period)
    except ValueError as exc:
        raise SystemExit(f"accolade: --period {args.period!r} is not an ISO 8601 time") from exc


def show(args: argparse.Namespace) -> int:
    with client(args) as c:
        page = c.get_leaderboard(
            args.board,
            period_start=_period(args),
            page_size=args.page_size,
            page_token=args.page_token,
        )
    if args.json:
        render.print_json(page)
        return 0
    if page.HasField("period_start"):
        start = page.period_start.ToDatetime().isoformat()
        end = page.period_end.ToDatetime().isoformat()
        print(f"period {start}Z - {end}Z")
    _entries(page.entries)
    if page.next_page_token:
        print(f"more: --page-token {page.next_page_token}")
    return 0


def rank(args: argparse.Namespace) -> int:
    with client(args) as c:
        found = c.get_leaderboard_rank(
            args.board, args.user, around=args.around, period_start=_period(args)
        )
    if args.json:
        render.print_json(found)
        return 0
    if not found.HasField("entry"):
        print(f"{args.user} has no entry on {args.board}")
        return 0
    _entries(found.entries, mark=args.user)
    return 0


def list_boards(args: argparse.Namespace) -> int:
    with client(args) as c:
        boards = list(c.list_leaderboards(page_size=1000))
    if args.json:
        render.print_json(lpb.ListLeaderboardsResponse(leaderboards=boards))
        return 0
    render.table(
        ("ID", "TITLE", "METRIC", "PERIOD", "ZONE", "FILTER"),
        [
            (
                b.id,
                b.title or "-",
                lpb.LeaderboardMetric.Name(b.metric).removeprefix("LEADERBOARD_METRIC_").lower()
                + (f" of {b.achievement_id}" if b.achievement_id else ""),
                lpb.LeaderboardPeriod.Name(b.period).removeprefix("LEADERBOARD_PERIOD_").lower(),
                b.time_zone or "UTC",
                f"{b.filter_attribute}={b.filter_value}" if b.filter_attribute else "-",
            )
            for b in boards
        ],
    )
    return 0


def add_verbs(verbs_: Any, common: argparse.ArgumentParser) -> None:
    board = verbs_.add_parser("leaderboard", help="leaderboards: pages and ranks")
    actions = board.add_subparsers(dest="leaderboard_verb", required=True, metavar="ACTION")
    listed = actions.add_parser("list", parents=[common], help="every board")
    listed.set_defaults(func=list_boards)
    shown = actions.add_parser("show", parents=[common], help="a page of a board, best first")
    shown.add_argument("board", help='the board\'s id ("points": lifetime points)')
    shown.add_argument("--page-size", type=int, default=20)
    shown.add_argument("--page-token", default="", help="from the previous page's output")
    shown.add_argument("--period", help="an ISO 8601 time within a past period")
    shown.set_defaults(func=show)
    ranked = actions.add_parser("rank", parents=[common], help="a user's rank and neighbours")
    ranked.add_argument("board")
    ranked.add_argument("user")
    ranked.add_argument("--around", type=int, default=2, help="neighbours on each side")
    ranked.add_argument("--period", help="an ISO 8601 time within a past period")
    ranked.set_defaults(func=rank)
