"""The `accolade` command.

Client verbs talk to a server over gRPC (`--target`, `--api-key`, TLS flags) through
`accolade.Client`; `serve`, `migrate` and `keys` run against the database and need the
`[server]` extra.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from accolade import definitions
from accolade._common import DEFAULT_TARGET
from accolade._errors import RPCError
from accolade.cli import _leaderboards as leaderboards
from accolade.cli import _verbs as verbs
from accolade.v1.admin_pb2 import ProgressPolicy
from accolade.v1.backfills_pb2 import BackfillMode
from accolade.v1.types_pb2 import Aggregate, Repeat


def _server_module() -> Any:
    try:
        from accolade_server import cli
    except ImportError as exc:
        raise SystemExit(
            f"accolade: this command runs the server, which needs the [server] extra "
            f"(pip install 'accolade[server]'): {exc}"
        ) from exc
    return cli


def _server_verb(name: str) -> Callable[[argparse.Namespace], Any]:
    return lambda args: getattr(_server_module(), name)(args)


def _connection_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--target",
        default=os.environ.get("ACCOLADE_TARGET", DEFAULT_TARGET),
        help=f"server address host:port (env ACCOLADE_TARGET; default {DEFAULT_TARGET})",
    )
    common.add_argument(
        "--api-key",
        default=os.environ.get("ACCOLADE_API_KEY"),
        help="API key sent as a bearer token (env ACCOLADE_API_KEY)",
    )
    common.add_argument("--tls", action="store_true", help="use TLS with the system's roots")
    common.add_argument("--ca", metavar="PEM", help="TLS: trust this CA certificate file")
    common.add_argument("--cert", metavar="PEM", help="mutual TLS: client certificate file")
    common.add_argument("--key", metavar="PEM", help="mutual TLS: client private key file")
    common.add_argument("--server-name", help="TLS: expect this name in the server certificate")
    common.add_argument("--timeout", type=float, default=30.0, help="deadline in seconds")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    return common


def _add_server_verbs(verbs_: Any) -> None:
    config_help = "YAML settings file (same as ACCOLADE_CONFIG_FILE)"
    serve = verbs_.add_parser("serve", help="run the server (needs the [server] extra)")
    serve.add_argument("--listen", help="host:port (overrides ACCOLADE_LISTEN)")
    serve.add_argument("--config", help=config_help)
    serve.add_argument("--workers", type=int, help="server processes on one port (PostgreSQL)")
    serve.add_argument(
        "--insecure",
        action="store_const",
        const=True,
        help="accept unauthenticated calls from any address when no keys exist",
    )
    serve.set_defaults(func=_server_verb("serve"))

    mig = verbs_.add_parser("migrate", help="apply database migrations (needs the [server] extra)")
    mig.add_argument("--config", help=config_help)
    mig.set_defaults(func=_server_verb("migrate"))

    keys = verbs_.add_parser("keys", help="API keys, straight in the database (needs [server])")
    keys_verbs = keys.add_subparsers(dest="keys_verb", required=True, metavar="ACTION")
    create = keys_verbs.add_parser("create", help="create a key; prints its secret once")
    create.add_argument(
        "--scope",
        action="append",
        choices=["track", "read", "admin", "redeem"],
        help="repeat for several scopes",
    )
    create.add_argument(
        "--third-party",
        action="store_true",
        help="a third-party key (track/read only; needs api_access enabled)",
    )
    create.add_argument("--name", help="a label for the key")
    create.set_defaults(func=_server_verb("keys_create"))
    klist = keys_verbs.add_parser("list", help="list keys (never their secrets)")
    klist.add_argument("--json", action="store_true")
    klist.set_defaults(func=_server_verb("keys_list"))
    krevoke = keys_verbs.add_parser("revoke", help="revoke a key by id")
    krevoke.add_argument("id")
    krevoke.set_defaults(func=_server_verb("keys_revoke"))
    for sub_parser in (create, klist, krevoke):
        sub_parser.add_argument("--config", help=config_help)
        sub_parser.add_argument(
            "--database-url",
            help="the server's database (overrides ACCOLADE_DATABASE_URL); needed to create "
            "a new SQLite file",
        )


def _add_client_verbs(verbs_: Any, common: argparse.ArgumentParser) -> None:
    track = verbs_.add_parser("track", parents=[common], help="record an event")
    track.add_argument("type", help="event type, e.g. purchase_completed")
    track.add_argument("--user", required=True, help="the user who did it")
    track.add_argument(
        "--prop",
        action="append",
        type=verbs.prop,
        metavar="KEY=VALUE",
        help='an event property (VALUE as JSON when valid: 42, true, "x"); repeatable',
    )
    track.add_argument("--event-id", help="idempotency key (default: a new random id)")
    track.add_argument(
        "--time-zone",
        help="the IANA zone the user was in (e.g. Europe/Berlin), for streaks' local days",
    )
    track.add_argument(
        "--strict",
        action="store_true",
        help=f"exit with status {verbs.NOT_TRACKED} when the server does not track the type",
    )
    track.set_defaults(func=verbs.track)

    progress = verbs_.add_parser("progress", parents=[common], help="a user's progress")
    progress.add_argument("user")
    progress.add_argument("--category")
    progress.set_defaults(func=verbs.progress)

    awards = verbs_.add_parser("awards", parents=[common], help="a user's awards")
    awards.add_argument("user")
    awards.set_defaults(func=verbs.awards)

    explain = verbs_.add_parser(
        "explain", parents=[common], help="why a user has (not yet) earned an achievement"
    )
    explain.add_argument("user")
    explain.add_argument("achievement")
    explain.set_defaults(func=verbs.explain)
    stats = verbs_.add_parser(
        "stats", parents=[common], help="an achievement's stats, or every achievement's"
    )
    stats.add_argument("achievement", nargs="?")
    stats.add_argument("--order-by", choices=("rarity", "completion"), default="rarity")
    stats.set_defaults(func=verbs.stats)

    watch = verbs_.add_parser(
        "watch", parents=[common], help="print awards as they happen (resumes by itself)"
    )
    watch.add_argument("--user", action="append", help="only this user; repeatable")
    watch.add_argument("--achievement", action="append", help="only this one; repeatable")
    watch.add_argument(
        "--after", type=int, metavar="CURSOR", help="first replay entries after CURSOR (0: all)"
    )
    watch.set_defaults(func=verbs.watch)

    for name, verb in (("grant", "award"), ("revoke", "revoke")):
        sub = verbs_.add_parser(name, parents=[common], help=f"{verb} an achievement by hand")
        sub.add_argument("user")
        sub.add_argument("achievement")
        sub.add_argument("--tier", help="tier (tiered achievements)")
        sub.add_argument("--reason", help="recorded in the award log")
        sub.add_argument("--actor", help="who did it (recorded in the award log)")
        sub.set_defaults(func=verbs.grant_or_revoke)
        if name == "revoke":
            sub.add_argument(
                "--all-tiers",
                action="store_true",
                help="revoke every tier held (default: the highest; with --tier: it and above)",
            )

    users = verbs_.add_parser("users", help="users' data")
    users_verbs = users.add_subparsers(dest="users_verb", required=True, metavar="ACTION")
    delete_user = users_verbs.add_parser(
        "delete",
        parents=[common],
        help="erase everything stored of a user (events, progress, awards, points)",
    )
    delete_user.add_argument("user")
    delete_user.set_defaults(func=verbs.users_delete)
    get_user = users_verbs.add_parser("get", parents=[common], help="a user's profile as JSON")
    get_user.add_argument("user")
    get_user.set_defaults(func=verbs.users_get)
    list_users = users_verbs.add_parser("list", parents=[common], help="users with a profile")
    list_users.add_argument("--prefix", default="", help="only ids starting with PREFIX")
    list_users.set_defaults(func=verbs.users_list)
    upsert_user = users_verbs.add_parser(
        "upsert",
        parents=[common],
        help="create a user's profile or change the fields given (others stay as they are)",
    )
    upsert_user.add_argument("user")
    upsert_user.add_argument("--display-name", help="shown instead of the id")
    upsert_user.add_argument("--avatar-url", help="an http(s) URL of a picture")
    upsert_user.add_argument("--time-zone", help="an IANA name, e.g. Europe/Berlin")
    upsert_user.add_argument("--locale", help="a BCP 47 tag, e.g. pt-BR")
    upsert_user.add_argument(
        "--attr",
        action="append",
        type=verbs.prop,
        metavar="KEY=VALUE",
        help="an attribute (VALUE as JSON when valid); repeatable; replaces all attributes",
    )
    upsert_user.add_argument(
        "--clear-attributes", action="store_true", help="remove every attribute"
    )
    upsert_user.set_defaults(func=verbs.users_upsert)

    points = verbs_.add_parser("points", help="spend points: redemptions, refunds, the ledger")
    points_verbs = points.add_subparsers(dest="points_verb", required=True, metavar="ACTION")
    redeem = points_verbs.add_parser(
        "redeem", parents=[common], help="spend a user's points (idempotent by REDEMPTION_ID)"
    )
    redeem.add_argument("redemption_id", metavar="REDEMPTION_ID")
    redeem.add_argument("user")
    redeem.add_argument("points", type=int)
    redeem.add_argument("--reason", default="", help="shown in the ledger")
    redeem.add_argument("--reward", default="", help="what the points buy (a reward id)")
    redeem.set_defaults(func=verbs.points_redeem)
    refund = points_verbs.add_parser(
        "refund", parents=[common], help="give a redemption's points back (once)"
    )
    refund.add_argument("redemption_id", metavar="REDEMPTION_ID")
    refund.add_argument("--reason", default="", help="shown in the ledger")
    refund.set_defaults(func=verbs.points_refund)
    points_ledger = points_verbs.add_parser(
        "ledger", parents=[common], help="every change to a user's points, newest first"
    )
    points_ledger.add_argument("user")
    points_ledger.set_defaults(func=verbs.points_ledger)

    entitled = verbs_.add_parser(
        "entitlements", parents=[common], help="a user's active entitlements (rewards)"
    )
    entitled.add_argument("user")
    entitled.set_defaults(func=verbs.entitlements)
    leaderboards.add_verbs(verbs_, common)

    rules = verbs_.add_parser("rules", help="achievement definitions as YAML files")
    rules_verbs = rules.add_subparsers(dest="rules_verb", required=True, metavar="ACTION")
    apply = rules_verbs.add_parser(
        "apply", parents=[common], help="validate a file, then create/update all or nothing"
    )
    apply.add_argument("file")
    apply.add_argument(
        "--dry-run", action="store_true", help="show what would change, write nothing"
    )
    apply.add_argument(
        "--allow-removal",
        action="store_true",
        help="clear fields stored achievements have and the file leaves out",
    )
    apply.add_argument(
        "--replace",
        action="store_true",
        help="replace achievements last applied from another file (--source)",
    )
    apply.add_argument(
        "--progress",
        type=verbs.enum_arg(ProgressPolicy, "a progress policy"),
        metavar="{keep,reset,reevaluate,revoke_non_qualifying}",
        help="what to do with users' progress when a rule's event types, aggregate, field, "
        "condition or thresholds change: keep it, reset it to 0 (awards already made stay), "
        "or recompute it from stored events (a backfill; revoke_non_qualifying also revokes "
        "levels no longer reached)",
    )
    apply.add_argument(
        "--backfill",
        action="store_true",
        help="backfill the achievements the file creates or enables from stored events "
        "(award users who already qualify; see `accolade backfills list`)",
    )
    apply.add_argument(
        "--notify",
        action="store_true",
        help="let the backfills' awards notify webhook and email sinks (default: they do not)",
    )
    apply.add_argument(
        "--source", metavar="NAME", help="recorded with each achievement (default: file name)"
    )
    apply.set_defaults(func=verbs.rules_apply)
    preview = rules_verbs.add_parser(
        "preview",
        parents=[common],
        help="what each definition of a file would do over the stored events (writes nothing)",
    )
    preview.add_argument("file")
    preview.add_argument("--sample", type=int, default=5, help="affected users to show")
    preview.set_defaults(func=verbs.rules_preview)
    export = rules_verbs.add_parser(
        "export", parents=[common], help="write every definition as YAML"
    )
    export.add_argument("-o", "--output", help="file to write (default: standard output)")
    export.set_defaults(func=verbs.rules_export)

    ach = verbs_.add_parser("achievements", help="read and manage achievements")
    ach_verbs = ach.add_subparsers(dest="ach_verb", required=True, metavar="ACTION")
    create = ach_verbs.add_parser(
        "create", parents=[common], help="create from a definitions file or from flags"
    )
    create.add_argument("file", nargs="?", help="YAML/JSON definitions file")
    create.add_argument("--id")
    create.add_argument("--title")
    create.add_argument("--event", action="append", help="event type that counts; repeatable")
    create.add_argument("--condition", help="CEL condition on the event")
    create.add_argument(
        "--aggregate",
        type=verbs.enum_arg(Aggregate, "an aggregate"),
        metavar="{count,sum,max,distinct,streak_days}",
        help="how matching events add up (default count)",
    )
    create.add_argument("--field", help="the property that sum, max and distinct read")
    create.add_argument(
        "--rule-target",
        type=float,
        default=0,
        help="the rule's target: how many matching events unlock it (default 1); --target is "
        "the server address",
    )
    create.add_argument("--points", type=int, default=0)
    create.add_argument(
        "--repeat",
        type=verbs.enum_arg(Repeat, "a repeat"),
        metavar="{daily,weekly,monthly}",
        help="earn it again every local day, ISO week or month (progress resets each period)",
    )
    create.set_defaults(func=verbs.achievements_create)
    lst = ach_verbs.add_parser("list", parents=[common], help="list achievements")
    lst.add_argument("--category")
    lst.set_defaults(func=verbs.achievements_list)
    get = ach_verbs.add_parser("get", parents=[common], help="show one achievement")
    get.add_argument("id")
    get.set_defaults(func=verbs.achievements_get)
    delete = ach_verbs.add_parser("delete", parents=[common], help="delete an achievement")
    delete.add_argument("id")
    delete.add_argument(
        "--force",
        action="store_true",
        help="delete even if users hold it (they keep it and its points; awards stay logged)",
    )
    delete.set_defaults(func=verbs.achievements_delete)

    bf = verbs_.add_parser("backfills", help="backfill jobs: progress computed from history")
    bf_verbs = bf.add_subparsers(dest="backfills_verb", required=True, metavar="ACTION")
    bf_start = bf_verbs.add_parser(
        "start", parents=[common], help="backfill a stored, enabled achievement from history"
    )
    bf_start.add_argument("achievement")
    bf_start.add_argument(
        "--mode",
        type=verbs.enum_arg(BackfillMode, "a backfill mode"),
        metavar="{reevaluate,revoke_non_qualifying}",
        help="reevaluate (default): award levels newly reached, keep those held; "
        "revoke_non_qualifying: also revoke levels no longer reached, with their points",
    )
    bf_start.add_argument(
        "--notify",
        action="store_true",
        help="let its awards notify webhook and email sinks (default: they do not)",
    )
    bf_start.add_argument("--reason", default="", help="recorded with each award-log entry")
    bf_start.set_defaults(func=verbs.backfills_start)
    bf_list = bf_verbs.add_parser("list", parents=[common], help="backfills, newest first")
    bf_list.add_argument("--achievement", help="only backfills of this achievement")
    bf_list.set_defaults(func=verbs.backfills_list)
    bf_get = bf_verbs.add_parser("get", parents=[common], help="one backfill's progress")
    bf_get.add_argument("name", help="backfills/ID (or ID)")
    bf_get.set_defaults(func=verbs.backfills_get)
    bf_cancel = bf_verbs.add_parser("cancel", parents=[common], help="cancel a backfill")
    bf_cancel.add_argument("name", help="backfills/ID (or ID)")
    bf_cancel.set_defaults(func=verbs.backfills_cancel)

    types = verbs_.add_parser("event-types", help="what events of each type carry")
    types_verbs = types.add_subparsers(dest="types_verb", required=True, metavar="ACTION")
    tlist = types_verbs.add_parser("list", parents=[common], help="event types seen or declared")
    tlist.set_defaults(func=verbs.event_types_list)
    tget = types_verbs.add_parser("get", parents=[common], help="one event type's properties")
    tget.add_argument("name")
    tget.set_defaults(func=verbs.event_types_get)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="accolade", description=__doc__.splitlines()[0])
    verbs_ = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")
    _add_server_verbs(verbs_)
    _add_client_verbs(verbs_, _connection_options())
    return parser


def _show_warnings() -> None:
    """The SDK logs the server's warnings about rules; print them on standard error."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("accolade: warning: %(message)s"))
    handler.setLevel(logging.WARNING)
    logger = logging.getLogger("accolade")
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _show_warnings()
    try:
        return _run(args)
    except BrokenPipeError:
        # The reader went away (`accolade … | head`): stop quietly, as a tool killed by
        # SIGPIPE would, and keep the interpreter's final flush from failing again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for such a tool


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args) or 0)
    except definitions.DefinitionError as exc:
        print(f"accolade: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        raise  # an OSError, but not a bad file: see main
    except OSError as exc:  # certificate files and the like
        print(f"accolade: {exc}", file=sys.stderr)
        return 2
    except RPCError as exc:
        message = verbs.in_file_terms(args, exc.message)
        print(f"accolade: {exc.code.name}: {message}", file=sys.stderr)
        if exc.code == grpc.StatusCode.UNAVAILABLE:
            print(
                f"  is a server running at {args.target}? (`make run` starts one)", file=sys.stderr
            )
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
