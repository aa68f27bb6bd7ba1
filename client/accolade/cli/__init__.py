"""The `accolade` command.

Client verbs talk to a server over gRPC (`--target`); `serve` and `migrate` run the server
and need the `[server]` extra.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf import json_format

from accolade import definitions
from accolade.v1 import admin_pb2, admin_pb2_grpc

DEFAULT_TARGET = "127.0.0.1:50051"


def _server_module() -> Any:
    try:
        from accolade_server import cli
    except ImportError as exc:
        raise SystemExit(
            f"accolade: this command runs the server, which needs the [server] extra "
            f"(pip install 'accolade[server]'): {exc}"
        ) from exc
    return cli


def _admin(args: argparse.Namespace) -> admin_pb2_grpc.AchievementAdminStub:
    channel = grpc.insecure_channel(args.target)
    return admin_pb2_grpc.AchievementAdminStub(channel)


def _print_json(message: Any) -> None:
    print(
        json.dumps(json_format.MessageToDict(message, preserving_proto_field_name=True), indent=2)
    )


def _rules_apply(args: argparse.Namespace) -> int:
    items = definitions.load(args.file)
    result = _admin(args).ApplyAchievements(
        admin_pb2.ApplyAchievementsRequest(achievements=items, validate_only=args.dry_run),
        timeout=args.timeout,
    )
    if args.json:
        _print_json(result)
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


def _list_all(args: argparse.Namespace, category: str = "") -> list[Any]:
    stub, token = _admin(args), ""
    out: list[Any] = []
    while True:
        page = stub.ListAchievements(
            admin_pb2.ListAchievementsRequest(page_size=1000, page_token=token, category=category),
            timeout=args.timeout,
        )
        out.extend(page.achievements)
        token = page.next_page_token
        if not token:
            return out


def _rules_export(args: argparse.Namespace) -> int:
    text = definitions.dump(_list_all(args))
    if args.output and args.output != "-":
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


def _achievements_list(args: argparse.Namespace) -> int:
    items = _list_all(args, args.category or "")
    if args.json:
        _print_json(admin_pb2.ListAchievementsResponse(achievements=items))
        return 0
    rows = [
        (
            a.id,
            a.title,
            a.category or "-",
            "yes" if a.enabled else "no",
            ",".join(a.rule.event_types),
        )
        for a in items
    ]
    header = ("ID", "TITLE", "CATEGORY", "ENABLED", "EVENTS")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _achievements_get(args: argparse.Namespace) -> int:
    found = _admin(args).GetAchievement(
        admin_pb2.GetAchievementRequest(id=args.id), timeout=args.timeout
    )
    _print_json(found.achievement)
    return 0


def _achievements_delete(args: argparse.Namespace) -> int:
    _admin(args).DeleteAchievement(
        admin_pb2.DeleteAchievementRequest(id=args.id), timeout=args.timeout
    )
    print(f"deleted {args.id}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="accolade", description=__doc__.splitlines()[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--target",
        default=os.environ.get("ACCOLADE_TARGET", DEFAULT_TARGET),
        help=f"server address host:port (env ACCOLADE_TARGET; default {DEFAULT_TARGET})",
    )
    common.add_argument("--timeout", type=float, default=30.0, help="deadline in seconds")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")

    serve = verbs.add_parser("serve", help="run the server (needs the [server] extra)")
    serve.add_argument("--listen", help="host:port (overrides ACCOLADE_LISTEN)")
    serve.add_argument("--config", help="YAML settings file (same as ACCOLADE_CONFIG_FILE)")
    serve.set_defaults(func=lambda a: _server_module().serve(a))

    mig = verbs.add_parser("migrate", help="apply database migrations (needs the [server] extra)")
    mig.add_argument("--config", help="YAML settings file (same as ACCOLADE_CONFIG_FILE)")
    mig.set_defaults(func=lambda a: _server_module().migrate(a))

    serve.add_argument("--workers", type=int, help="server processes on one port (PostgreSQL)")
    serve.add_argument(
        "--insecure",
        action="store_const",
        const=True,
        help="accept unauthenticated calls from any address when no keys exist",
    )

    keys = verbs.add_parser("keys", help="API keys, straight in the database (needs [server])")
    keys_verbs = keys.add_subparsers(dest="keys_verb", required=True, metavar="ACTION")
    create = keys_verbs.add_parser("create", help="create a key; prints its secret once")
    create.add_argument(
        "--scope",
        action="append",
        choices=["track", "read", "admin"],
        help="repeat for several scopes",
    )
    create.add_argument(
        "--third-party",
        action="store_true",
        help="a third-party key (track/read only; needs api_access enabled)",
    )
    create.add_argument("--name", help="a label for the key")
    create.set_defaults(func=lambda a: _server_module().keys_create(a))
    klist = keys_verbs.add_parser("list", help="list keys (never their secrets)")
    klist.add_argument("--json", action="store_true")
    klist.set_defaults(func=lambda a: _server_module().keys_list(a))
    krevoke = keys_verbs.add_parser("revoke", help="revoke a key by id")
    krevoke.add_argument("id")
    krevoke.set_defaults(func=lambda a: _server_module().keys_revoke(a))
    for sub_parser in (create, klist, krevoke):
        sub_parser.add_argument("--config", help="YAML settings file (ACCOLADE_CONFIG_FILE)")

    rules = verbs.add_parser("rules", help="achievement definitions as YAML files")
    rules_verbs = rules.add_subparsers(dest="rules_verb", required=True, metavar="ACTION")
    apply = rules_verbs.add_parser(
        "apply", parents=[common], help="validate a file, then create/update all or nothing"
    )
    apply.add_argument("file")
    apply.add_argument("--dry-run", action="store_true", help="validate only, write nothing")
    apply.set_defaults(func=_rules_apply)
    export = rules_verbs.add_parser(
        "export", parents=[common], help="write every definition as YAML"
    )
    export.add_argument("-o", "--output", help="file to write (default: standard output)")
    export.set_defaults(func=_rules_export)

    ach = verbs.add_parser("achievements", help="read and manage achievements")
    ach_verbs = ach.add_subparsers(dest="ach_verb", required=True, metavar="ACTION")
    lst = ach_verbs.add_parser("list", parents=[common], help="list achievements")
    lst.add_argument("--category")
    lst.set_defaults(func=_achievements_list)
    get = ach_verbs.add_parser("get", parents=[common], help="show one achievement")
    get.add_argument("id")
    get.set_defaults(func=_achievements_get)
    delete = ach_verbs.add_parser("delete", parents=[common], help="delete an achievement")
    delete.add_argument("id")
    delete.set_defaults(func=_achievements_delete)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except definitions.DefinitionError as exc:
        print(f"accolade: {exc}", file=sys.stderr)
        return 2
    except grpc.RpcError as exc:
        code = exc.code()
        print(f"accolade: {code.name}: {exc.details()}", file=sys.stderr)
        if code == grpc.StatusCode.UNAVAILABLE:
            print(
                f"  is a server running at {args.target}? (`make run` starts one)", file=sys.stderr
            )
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
