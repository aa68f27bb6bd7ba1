"""Client verbs of the `accolade` command, each a thin layer over `accolade.Client`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from accolade import definitions
from accolade._client import Client
from accolade._common import TLS
from accolade._retry import RetryPolicy
from accolade.cli import _render as render
from accolade.v1 import admin_pb2, types_pb2


def client(args: argparse.Namespace) -> Client:
    tls: bool | TLS | None = None
    if args.tls or args.ca or args.cert or args.server_name:
        tls = TLS(
            root_certificates=args.ca,
            certificate_chain=args.cert,
            private_key=args.key,
            server_name=args.server_name,
        )
    return Client(
        args.target,
        api_key=args.api_key,
        tls=tls,
        timeout=args.timeout,
        retry=RetryPolicy(max_attempts=3),
    )


def prop(text: str) -> tuple[str, Any]:
    """`k=v`; v is read as JSON when it is valid JSON (42, true, "x", [1]), else as text."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key, value


def track(args: argparse.Namespace) -> int:
    with client(args) as c:
        result = c.track_event(
            args.type,
            args.user,
            event_id=args.event_id,
            properties=dict(args.prop or []),
        )
    if args.json:
        render.print_json(result)
        return 0
    state = (
        "duplicate (counted before)"
        if result.duplicate
        else ("tracked" if result.tracked else "ignored (event type not tracked)")
    )
    print(f"{args.type} for {args.user}: {state}")
    for award in result.awards:
        print(f"  earned {award.achievement_id}" + (f" ({award.tier})" if award.tier else ""))
    if result.progress:
        render.table(
            ("  ACHIEVEMENT", "PROGRESS", "", "TIER", "STATUS"),
            [("  " + row[0], *row[1:]) for row in render.progress_rows(result.progress)],
        )
    return 0


def progress(args: argparse.Namespace) -> int:
    with client(args) as c:
        result = c.get_progress(args.user, category=args.category or "")
    if args.json:
        render.print_json(result)
        return 0
    render.table(
        ("ACHIEVEMENT", "PROGRESS", "", "TIER", "STATUS"), render.progress_rows(result.progress)
    )
    print(f"total points: {result.total_points}")
    return 0


def awards(args: argparse.Namespace) -> int:
    with client(args) as c:
        held = list(c.list_awards(args.user))
    if args.json:
        render.print_json({"awards": [render.as_dict(a) for a in held]})
        return 0
    render.table(
        ("ACHIEVEMENT", "TIER", "POINTS", "SOURCE", "AWARDED"),
        [
            (
                a.achievement_id,
                a.tier or "-",
                a.points,
                types_pb2.AwardSource.Name(a.source).removeprefix("AWARD_SOURCE_").lower(),
                a.award_time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S") + "Z",
            )
            for a in held
        ],
    )
    return 0


def watch(args: argparse.Namespace) -> int:
    """Print entries as they come, one per line, until interrupted; resumes by itself."""
    with (
        client(args) as c,
        c.watch_awards(
            user_ids=args.user or (),
            achievement_ids=args.achievement or (),
            after_cursor=args.after,
        ) as stream,
    ):
        if not args.json:
            print(
                f"watching from cursor {stream.cursor} (Ctrl-C to stop; resume with --after)",
                file=sys.stderr,
                flush=True,
            )
        try:
            for award in stream:
                if args.json:
                    render.print_json(award, indent=None)
                else:
                    print(render.award_line(award), flush=True)
        except KeyboardInterrupt:
            print(f"stopped after cursor {stream.cursor}", file=sys.stderr)
    return 0


def grant_or_revoke(args: argparse.Namespace) -> int:
    """`grant` and `revoke` (by `args.verb`)."""
    with client(args) as c:
        result: admin_pb2.GrantAwardResponse | admin_pb2.RevokeAwardResponse
        if args.verb == "grant":
            result = c.grant(
                args.user,
                args.achievement,
                tier=args.tier or "",
                reason=args.reason or "",
                actor=args.actor or "",
            )
        else:
            result = c.revoke(
                args.user,
                args.achievement,
                tier=args.tier or "",
                all_tiers=args.all_tiers,
                reason=args.reason or "",
                actor=args.actor or "",
            )
    if args.json:
        render.print_json(result)
    elif isinstance(result, admin_pb2.GrantAwardResponse):
        held = result.already_held
        print(
            f"{args.user} already holds {args.achievement}"
            if held
            else f"granted {args.achievement} to {args.user} (cursor {result.award.cursor})"
        )
    elif not result.revocations:
        print(f"{args.user} did not hold {args.achievement}; nothing changed")
    else:
        tiers = ", ".join(r.tier for r in result.revocations if r.tier)
        print(f"revoked {args.achievement}{f' ({tiers})' if tiers else ''} from {args.user}")
    return 0


def users_delete(args: argparse.Namespace) -> int:
    with client(args) as c:
        erasure = c.delete_user_data(args.user)
    if args.json:
        render.print_json(erasure or types_pb2.Award())
    elif erasure is None:
        print(f"nothing stored of {args.user}; nothing changed")
    else:
        print(f"erased every record of {args.user} (erasure entry at cursor {erasure.cursor})")
    return 0


def rules_apply(args: argparse.Namespace) -> int:
    items = definitions.load(args.file)
    with client(args) as c:
        result = c.apply_achievements(items, validate_only=args.dry_run)
    if args.json:
        render.print_json(result)
        return 0
    verb = "would be" if args.dry_run else "were"
    print(
        f"{len(items)} achievements in {args.file}: {len(result.created)} {verb} created, "
        f"{len(result.updated)} {verb} updated, {len(result.unchanged)} unchanged"
    )
    for label, ids in (("created", result.created), ("updated", result.updated)):
        for aid in ids:
            print(f"  {label}: {aid}")
    return 0


def rules_export(args: argparse.Namespace) -> int:
    with client(args) as c:
        text = definitions.dump(list(c.list_achievements(page_size=1000)))
    if args.output and args.output != "-":
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


def achievements_create(args: argparse.Namespace) -> int:
    """From a definitions file (each entry created; existing ids fail), or from flags."""
    if args.file:
        items = definitions.load(args.file)
    elif args.id and args.event:
        rule = types_pb2.Rule(
            event_types=args.event, condition=args.condition or "", target=args.target_count
        )
        items = [
            types_pb2.Achievement(
                id=args.id, title=args.title or args.id, points=args.points, rule=rule
            )
        ]
    else:
        raise definitions.DefinitionError("give a definitions FILE, or --id and --event")
    created = []
    with client(args) as c:
        for item in items:
            created.append(c.create_achievement(item))
            if not args.json:
                print(f"created {item.id}")
    if args.json:
        render.print_json(admin_pb2.ListAchievementsResponse(achievements=created))
    return 0


def achievements_list(args: argparse.Namespace) -> int:
    with client(args) as c:
        items = list(c.list_achievements(category=args.category or "", page_size=1000))
    if args.json:
        render.print_json(admin_pb2.ListAchievementsResponse(achievements=items))
        return 0
    render.table(
        ("ID", "TITLE", "CATEGORY", "ENABLED", "EVENTS"),
        [
            (
                a.id,
                a.title,
                a.category or "-",
                "yes" if a.enabled else "no",
                ",".join(a.rule.event_types),
            )
            for a in items
        ],
    )
    return 0


def achievements_get(args: argparse.Namespace) -> int:
    with client(args) as c:
        render.print_json(c.get_achievement(args.id))
    return 0


def achievements_delete(args: argparse.Namespace) -> int:
    with client(args) as c:
        c.delete_achievement(args.id)
    print(f"deleted {args.id}")
    return 0
