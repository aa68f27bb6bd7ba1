"""Import a YAML definitions file (with a diff before applying) and export all as YAML."""

from __future__ import annotations

import dataclasses
import json

import yaml
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response

from accolade import definitions
from accolade_server.console.achievements import all_achievements
from accolade_server.console.context import Console
from accolade_server.console.security import ConsoleRoute, Permission, Session
from accolade_server.domain.changes import ProgressPolicy
from accolade_server.domain.errors import AccoladeError, InvalidArgument
from accolade_server.domain.shapes import EventTypeShape
from accolade_server.rpc import convert
from accolade_server.service.achievements import ApplyItem, ApplyOptions

MAX_FILE_BYTES = 1024 * 1024


def parse_yaml(text: str, source: str) -> tuple[list[ApplyItem], list[EventTypeShape]]:
    """Definitions in either accepted shape (see accolade.definitions), as the gRPC
    ApplyAchievements call would receive them."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"not valid YAML: {exc}", field="file") from exc
    try:
        read = definitions.read(data, source)
    except definitions.DefinitionError as exc:
        raise InvalidArgument(str(exc), field="file") from exc
    items = [
        ApplyItem(convert.achievement_from_proto(m, f"achievements[{i}]"), m.HasField("enabled"))
        for i, m in enumerate(read.achievements)
    ]
    return items, [convert.event_type_from_proto(t) for t in read.event_types]


def shown(value: str) -> str:
    """A diff value as a person reads it: the server sends JSON (`"Welcome"`, `5`, `null`)."""
    if not value:
        return "(none)"
    try:
        decoded = json.loads(value)
    except ValueError:
        return value
    return decoded if isinstance(decoded, str) else value


def _options(
    form: FormData, name: str, session: Session | None, *, validate_only: bool
) -> ApplyOptions:
    """What the admin allowed on the import page (the CLI's --allow-removal, --replace,
    --progress, --backfill and --notify), with the file's name as the source of what it
    applies and the admin as the actor of its backfills."""
    policy = str(form.get("progress_policy") or "")
    return ApplyOptions(
        validate_only=validate_only,
        source=name,
        allow_replace=form.get("allow_replace") == "on",
        allow_field_removal=form.get("allow_removal") == "on",
        progress_policy=ProgressPolicy(policy) if policy else ProgressPolicy.UNSPECIFIED,
        backfill=form.get("backfill") == "on",
        notify=form.get("notify") == "on",
        actor=session.actor if session else "",
    )


async def _upload_text(form: FormData) -> tuple[str, str]:
    upload = form.get("file")
    if isinstance(upload, UploadFile) and upload.filename:
        raw = await upload.read(MAX_FILE_BYTES + 1)
        name = upload.filename
    else:
        text = form.get("text")
        raw = text.encode() if isinstance(text, str) else b""
        name = "pasted text"
    if not raw.strip():
        raise InvalidArgument("choose a YAML file (or paste its text)", field="file")
    if len(raw) > MAX_FILE_BYTES:
        raise InvalidArgument(f"is larger than {MAX_FILE_BYTES} bytes", field="file")
    try:
        return raw.decode("utf-8"), name
    except UnicodeDecodeError:
        raise InvalidArgument("is not UTF-8 text", field="file") from None


def routes(console: Console) -> list[ConsoleRoute]:
    render = console.render
    service = console.services.achievements

    async def page(request: Request, session: Session | None) -> Response:
        return render.page(request, "import.html", {"error": ""})

    async def preview(request: Request, session: Session | None) -> Response:
        form = await request.form(max_part_size=MAX_FILE_BYTES)
        try:
            text, name = await _upload_text(form)
            items, event_types = parse_yaml(text, name)
            options = _options(form, name, session, validate_only=True)
            result = await service.apply(
                items, dataclasses.replace(options, event_types=event_types)
            )
        except AccoladeError as exc:
            return render.page(request, "import.html", {"error": str(exc)}, 422)
        return render.page(
            request,
            "import_preview.html",
            {"result": result, "text": text, "name": name, "options": options, "shown": shown},
        )

    async def apply(request: Request, session: Session | None) -> Response:
        form = await request.form()
        text = form.get("text")
        name = str(form.get("name") or "file")
        try:
            items, event_types = parse_yaml(text if isinstance(text, str) else "", name)
            options = _options(form, name, session, validate_only=False)
            result = await service.apply(
                items, dataclasses.replace(options, event_types=event_types)
            )
        except AccoladeError as exc:
            return render.page(request, "import.html", {"error": str(exc)}, 422)
        return render.page(request, "import_done.html", {"result": result})

    async def export(request: Request, session: Session | None) -> Response:
        items = sorted(await all_achievements(console), key=lambda a: a.id)
        text = definitions.dump([convert.achievement_to_proto(a) for a in items])
        return Response(
            text,
            media_type="application/yaml",
            headers={
                "content-disposition": 'attachment; filename="achievements.yaml"',
                "cache-control": "no-store",
            },
        )

    r = console.route
    return [
        r("/import", page, Permission.READ),
        r("/import/preview", preview, Permission.ADMIN, methods=["POST"]),
        r("/import/apply", apply, Permission.ADMIN, methods=["POST"]),
        r("/export.yaml", export, Permission.READ),
    ]
