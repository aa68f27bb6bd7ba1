"""Client verbs of the `accolade` command, each a thin layer over `accolade.Client`."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

from accolade import definitions
from accolade._client import Client
from accolade._common import TLS
from accolade._enums import EnumType, parse_enum, short_name
from accolade._retry import RetryPolicy
from accolade.cli import _render as render
from accolade.v1 import admin_pb2, backfills_pb2, points_pb2, types_pb2, users_pb2
from accolade.v1 import leaderboards_pb2 as lpb


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


#: Exit status of `accolade track --strict` for an event that was not tracked.
NOT_TRACKED = 3


def enum_arg(enum: EnumType, what: str) -> Callable[[str], int]:
    """An argparse type for an enum flag, in the one spelling rule (`keep`, `KEEP`, …)."""

    def convert(text: str) -> int:
        try:
            return parse_enum(enum, text, what=what)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = what  # argparse names the type in its message
    return convert


def in_file_terms(args: argparse.Namespace, message: str) -> str:
    """A server message about `achievements[N]` of the request, with N's place in the file."""
    origins: list[str] = getattr(args, "origins", [])
    file = getattr(args, "file", None)
    if not origins or not file:
        return message

    def where(m: re.Match[str]) -> str:
        i = int(m.group(1))
        return f"{file}: {origins[i]}" if i < len(origins) else m.group(0)

    return re.sub(r"(?<![\w.])achievements\[(\d+)\]", where, message)


def track(args: argparse.Namespace) -> int:
    with client(args) as c:
        result = c.track_event(
            args.type,
            args.user,
            event_id=args.event_id,
            properties=dict(args.prop or []),
            time_zone=args.time_zone,
        )
    status = NOT_TRACKED if args.strict and not result.tracked else 0
    if args.json:
        render.print_json(result)
        return status
    state = "duplicate (counted before)" if result.duplicate else "tracked"
    if not result.tracked:
        state = f"not tracked: {result.untracked_reason}"
    print(f"{args.type} for {args.user}: {state}")
    for award in result.awards:
        print(f"  earned {render.award_name(award)}")
    for skipped in result.not_counted:
        print(f"  not counted for {skipped.achievement_id}: {skipped.reason}")
    if result.progress:
        render.table(
            ("  " + render.PROGRESS_HEADER[0], *render.PROGRESS_HEADER[1:]),
            [("  " + row[0], *row[1:]) for row in render.progress_rows(result.progress)],
        )
    return status


def progress(args: argparse.Namespace) -> int:
    with client(args) as c:
        result = c.get_progress(args.user, category=args.category or "")
    if args.json:
        render.print_json(result)
        return 0
    render.table(render.PROGRESS_HEADER, render.progress_rows(result.progress))
    print(f"total points: {result.total_points}")
    print(balance_line(result.balance))
    return 0


def balance_line(b: points_pb2.PointsBalance) -> str:
    line = f"lifetime points: {b.lifetime_points} · spendable points: {b.spendable_points}"
    if b.level:
        line += f" · level: {b.level}"
    if b.next_level:
        line += f" · {b.points_to_next_level} to {b.next_level}"
    return line


def explain(args: argparse.Namespace) -> int:
    with client(args) as c:
        result = c.explain_progress(args.user, args.achievement)
    if args.json:
        render.print_json(result)
        return 0
    print(f"{result.achievement_id} ({result.title}): value {result.value:g}")
    for line in result.summary or ["every level is held"]:
        print(f"- {line}")
    return 0


def stats(args: argparse.Namespace) -> int:
    with client(args) as c:
        if args.achievement:
            found = [c.get_achievement_stats(args.achievement)]
        else:
            found = list(c.list_achievement_stats(order_by=args.order_by))
    if args.json:
        render.print_json({"stats": [render.as_dict(s) for s in found]})
        return 0
    render.table(
        ("ACHIEVEMENT", "STARTED", "HOLDERS", "RARITY %", "COMPLETION %", "FUNNEL"),
        [
            (
                s.achievement_id,
                s.started,
                s.holders,
                f"{s.rarity_percent:g}",
                f"{s.completion_percent:g}",
                " > ".join(
                    f"{lv.tier or 'earned'} {lv.holders} ({lv.conversion_percent:g}%)"
                    for lv in s.levels
                ),
            )
            for s in found
        ],
    )
    return 0


def awards(args: argparse.Namespace) -> int:
    with client(args) as c:
        held = list(c.list_awards(args.user))
    if args.json:
        render.print_json({"awards": [render.as_dict(a) for a in held]})
        return 0
    render.table(
        ("ACHIEVEMENT", "TITLE", "TIER", "PERIOD", "POINTS", "SOURCE", "AWARDED"),
        [
            (
                a.achievement_id,
                a.title or "-",
                a.tier or "-",
                a.period or "-",
                a.points,
                short_name(types_pb2.AwardSource, a.source),
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


def users_get(args: argparse.Namespace) -> int:
    with client(args) as c:
        render.print_json(c.get_user(args.user))
    return 0


def users_list(args: argparse.Namespace) -> int:
    with client(args) as c:
        items = list(c.list_users(prefix=args.prefix, page_size=1000))
    if args.json:
        render.print_json(users_pb2.ListUsersResponse(users=items))
        return 0
    render.table(
        ("USER", "DISPLAY NAME", "TIME ZONE", "LOCALE", "ATTRIBUTES"),
        [
            (
                u.user_id,
                u.display_name or "-",
                u.time_zone or "-",
                u.locale or "-",
                ",".join(sorted(u.attributes.keys())) or "-",
            )
            for u in items
        ],
    )
    return 0


def users_upsert(args: argparse.Namespace) -> int:
    attributes: dict[str, Any] | None = {} if args.clear_attributes else None
    if args.attr:
        attributes = dict(args.attr)
    with client(args) as c:
        user = c.upsert_user(
            args.user,
            display_name=args.display_name,
            avatar_url=args.avatar_url,
            time_zone=args.time_zone,
            locale=args.locale,
            attributes=attributes,
        )
    render.print_json(user)
    return 0


def points_redeem(args: argparse.Namespace) -> int:
    with client(args) as c:
        done = c.redeem_points(
            args.redemption_id, args.user, args.points, reason=args.reason, reward_id=args.reward
        )
    if args.json:
        render.print_json(done)
        return 0
    r = done.redemption
    again = " (redeemed before; nothing changed)" if done.replayed else ""
    print(f"redeemed {r.points} points of {r.user_id} as {r.redemption_id}{again}")
    print(balance_line(done.balance))
    return 0


def points_refund(args: argparse.Namespace) -> int:
    with client(args) as c:
        done = c.refund_redemption(args.redemption_id, reason=args.reason)
    if args.json:
        render.print_json(done)
        return 0
    r = done.redemption
    again = " (refunded before; nothing changed)" if done.replayed else ""
    print(f"refunded {r.points} points to {r.user_id} for {r.redemption_id}{again}")
    print(balance_line(done.balance))
    return 0


def points_ledger(args: argparse.Namespace) -> int:
    with client(args) as c:
        entries = list(c.list_points_ledger(args.user, page_size=1000))
    if args.json:
        render.print_json(points_pb2.ListPointsLedgerResponse(entries=entries))
        return 0
    render.table(
        ("CURSOR", "SOURCE", "POINTS", "WHAT", "REASON", "ACTOR", "WHEN"),
        [
            (
                e.cursor,
                short_name(points_pb2.PointsSource, e.source),
                e.points,
                e.redemption_id
                + (f" ({e.reward_id})" if e.reward_id else "")
                + e.achievement_id
                + (f" ({e.tier})" if e.tier else ""),
                e.reason or "-",
                e.actor or "-",
                e.time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S") + "Z",
            )
            for e in entries
        ],
    )
    return 0


def entitlements(args: argparse.Namespace) -> int:
    with client(args) as c:
        found = c.get_entitlements(args.user)
    if args.json:
        render.print_json(points_pb2.GetEntitlementsResponse(entitlements=found))
        return 0
    render.table(
        ("NAME", "ACHIEVEMENT", "TIER", "GRANTED", "EXPIRES"),
        [
            (
                e.name,
                e.achievement_id,
                e.tier or "-",
                e.grant_time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S") + "Z",
                e.expire_time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S") + "Z"
                if e.HasField("expire_time")
                else "never",
            )
            for e in found
        ],
    )
    return 0


def rules_apply(args: argparse.Namespace) -> int:
    defs = definitions.load_file(args.file)
    args.origins = defs.origins
    with client(args) as c:
        result = c.apply_achievements(
            args.file,
            validate_only=args.dry_run,
            source_name=args.source,
            allow_replace=args.replace,
            allow_field_removal=args.allow_removal,
            progress_policy=args.progress,
            backfill=args.backfill,
            notify=args.notify,
        )
        boards = (
            c.apply_leaderboards(args.file, validate_only=args.dry_run)
            if defs.leaderboards
            else None
        )
    for warning in result.warnings:
        print(f"accolade: warning: {warning}", file=sys.stderr)
    if args.json:
        if boards is None:
            render.print_json(result)
        else:
            render.print_json(
                {"achievements": render.as_dict(result), "leaderboards": render.as_dict(boards)}
            )
        return 0

    def done(ids: Sequence[str], what: str) -> str:
        verb = "would be" if args.dry_run else "was" if len(ids) == 1 else "were"
        return f"{len(ids)} {verb} {what}"

    print(
        f"{render.count(len(defs.achievements), 'achievement')} in {args.file}: "
        f"{done(result.created, 'created')}, {done(result.updated, 'updated')}, "
        f"{len(result.unchanged)} unchanged"
    )
    for change in result.changes:
        kind = short_name(admin_pb2.AchievementChange.Kind, change.kind)
        if kind == "unchanged":
            continue
        print(f"  {'created' if kind == 'create' else 'updated'}: {change.id}")
        for f in change.fields:
            old, new = f.old_value or "(none)", f.new_value or "(none)"
            print(f"      {f.field}: {old} -> {new}")
    if boards is not None:
        kinds = [short_name(lpb.LeaderboardChange.Kind, b.kind) for b in boards.changes]
        print(
            f"{render.count(len(boards.changes), 'leaderboard')}: "
            f"{done([k for k in kinds if k == 'create'], 'created')}, "
            f"{done([k for k in kinds if k == 'update'], 'updated')}, "
            f"{kinds.count('unchanged')} unchanged"
        )
        for b, kind in zip(boards.changes, kinds, strict=True):
            if kind != "unchanged":
                fields = f" ({', '.join(b.fields)})" if b.fields else ""
                print(f"  {'created' if kind == 'create' else 'updated'}: {b.id}{fields}")
    for job in result.backfills:
        print(f"backfill queued: {job.name} ({job.achievement_id}); see accolade backfills get")
    if args.dry_run:
        print("dry run: nothing was written")
    return 0


def rules_export(args: argparse.Namespace) -> int:
    with client(args) as c:
        declared = [
            t
            for t in c.list_event_types(page_size=1000)
            if any(p.declared_type for p in t.properties)
        ]
        text = definitions.dump(
            list(c.list_achievements(page_size=1000)),
            declared,
            list(c.list_leaderboards(page_size=1000)),
        )
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
            event_types=args.event,
            condition=args.condition or "",
            aggregate=args.aggregate or types_pb2.AGGREGATE_COUNT,
            field=args.field or "",
            target=args.rule_target,
        )
        items = [
            types_pb2.Achievement(
                id=args.id,
                title=args.title or args.id,
                points=args.points,
                rule=rule,
                repeat=args.repeat or types_pb2.REPEAT_UNSPECIFIED,
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
        ("ID", "TITLE", "CATEGORY", "ENABLED", "EVENTS", "STATUS"),
        [
            (
                a.id,
                a.title,
                a.category or "-",
                "yes" if a.enabled else "no",
                ",".join(a.rule.event_types),
                render.definition_status(a),
            )
            for a in items
        ],
    )
    for a in items:
        for line in render.definition_problems(a):
            print(line)
    return 0


def achievements_get(args: argparse.Namespace) -> int:
    """The achievement as JSON on standard output; problems also on standard error."""
    with client(args) as c:
        found = c.get_achievement(args.id)
    render.print_json(found)
    if not args.json:
        for line in render.definition_problems(found):
            print(line, file=sys.stderr)
    return 0


def achievements_delete(args: argparse.Namespace) -> int:
    with client(args) as c:
        c.delete_achievement(args.id, force=args.force)
    print(f"deleted {args.id}")
    return 0


def event_types_list(args: argparse.Namespace) -> int:
    with client(args) as c:
        items = list(c.list_event_types(page_size=1000))
    if args.json:
        render.print_json(admin_pb2.ListEventTypesResponse(event_types=items))
        return 0
    render.table(
        ("EVENT TYPE", "PROPERTIES"),
        [(t.name, ", ".join(p.path for p in t.properties) or "-") for t in items],
    )
    return 0


def event_types_get(args: argparse.Namespace) -> int:
    with client(args) as c:
        shape = c.get_event_type(args.name)
    if args.json:
        render.print_json(shape)
        return 0
    render.table(
        ("PATH", "DECLARED", "OBSERVED"),
        [
            (
                p.path,
                short_name(admin_pb2.PropertyType, p.declared_type) if p.declared_type else "-",
                ",".join(short_name(admin_pb2.PropertyType, t) for t in p.observed_types) or "-",
            )
            for p in shape.properties
        ],
    )
    return 0


def rules_preview(args: argparse.Namespace) -> int:
    """What each definition of the file would do over the stored events (nothing written)."""
    defs = definitions.load_file(args.file)
    with client(args) as c:
        previews = [
            (a, c.preview_achievement(a, sample_size=args.sample)) for a in defs.achievements
        ]
    if args.json:
        render.print_json({a.id: render.as_dict(p) for a, p in previews})
        return 0
    for a, p in previews:
        print(
            f"{a.id}: {render.count(p.users_scanned, 'user')} with events, "
            f"{render.count(p.events_scanned, 'event')} scanned in {p.elapsed_seconds:.2f}s"
            + (" (deadline reached: partial)" if p.incomplete else "")
        )
        for level in p.levels:
            name = level.tier or "earned"
            print(f"  {name:<10} {render.number(level.threshold):>10}  {level.users} users")
        print(
            f"  backfill would award {p.awards} (notifications if asked: {p.notifications}); "
            f"{p.holders_losing} holders would lose levels ({p.revocations} revocations) "
            "under revoke_non_qualifying"
        )
        if p.history_truncated:
            cutoff = p.retention_cutoff.ToDatetime().strftime("%Y-%m-%d %H:%M:%S") + "Z"
            print(f"  history is truncated: events received before {cutoff} are gone")
        for user in p.sample:
            print(
                f"    {user.user_id}: value {render.number(user.value)}, "
                f"levels {user.levels_held} -> {user.levels_reached}"
            )
    return 0


def _backfill_row(b: backfills_pb2.Backfill) -> tuple[str, ...]:
    total = f"{b.events_scanned}/{b.events_total}"
    return (
        b.name,
        b.achievement_id,
        short_name(backfills_pb2.Backfill.State, b.state),
        short_name(backfills_pb2.BackfillMode, b.mode),
        total,
        str(b.users_done),
        str(b.awards_made),
        str(b.revocations_made),
        b.error or "-",
    )


_BACKFILL_HEADER = (
    "NAME",
    "ACHIEVEMENT",
    "STATE",
    "MODE",
    "EVENTS",
    "USERS",
    "AWARDS",
    "REVOKED",
    "ERROR",
)


def backfills_start(args: argparse.Namespace) -> int:
    with client(args) as c:
        job = c.start_backfill(
            args.achievement, mode=args.mode, notify=args.notify, reason=args.reason
        )
    if args.json:
        render.print_json(job)
        return 0
    mode = short_name(backfills_pb2.BackfillMode, job.mode)
    print(
        f"{job.name}: {short_name(backfills_pb2.Backfill.State, job.state)} ({mode} of "
        f"{job.achievement_id}, {'notifying' if job.notify else 'not notifying'} its awards)"
    )
    return 0


def backfills_list(args: argparse.Namespace) -> int:
    with client(args) as c:
        items = list(c.list_backfills(achievement_id=args.achievement or "", page_size=1000))
    if args.json:
        render.print_json(backfills_pb2.ListBackfillsResponse(backfills=items))
        return 0
    render.table(_BACKFILL_HEADER, [_backfill_row(b) for b in items])
    return 0


def _backfill_name(text: str) -> str:
    return text if text.startswith("backfills/") else f"backfills/{text}"


def backfills_get(args: argparse.Namespace) -> int:
    with client(args) as c:
        job = c.get_backfill(_backfill_name(args.name))
    if args.json:
        render.print_json(job)
        return 0
    render.table(_BACKFILL_HEADER, [_backfill_row(job)])
    return 0


def backfills_cancel(args: argparse.Namespace) -> int:
    with client(args) as c:
        job = c.cancel_backfill(_backfill_name(args.name))
    if args.json:
        render.print_json(job)
        return 0
    print(f"{job.name}: {short_name(backfills_pb2.Backfill.State, job.state)}")
    return 0
