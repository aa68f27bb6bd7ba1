"""Import a YAML definitions file (with a diff before applying) and export all as YAML."""

from __future__ import annotations

from dataclasses import dataclass

import yaml
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from accolade import definitions
from accolade_server.console import forms
from accolade_server.console.achievements import all_achievements
from accolade_server.console.context import Console
from accolade_server.console.security import ConsoleRoute, Permission, Session
from accolade_server.domain.errors import AccoladeError, InvalidArgument
from accolade_server.domain.model import Achievement
from accolade_server.rpc import convert

MAX_FILE_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Change:
    id: str
    kind: str  # created, updated, unchanged
    diff: list[tuple[str, str, str]]


def parse_yaml(text: str, source: str) -> list[Achievement]:
    """Definitions in either accepted shape (see accolade.definitions), as domain values."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"not valid YAML: {exc}", field="file") from exc
    try:
        messages = definitions.parse(data, source)
    except definitions.DefinitionError as exc:
        raise InvalidArgument(str(exc), field="file") from exc
    return [convert.achievement_from_proto(m, f"achievements[{i}]") for i, m in enumerate(messages)]


async def _upload_text(request: Request) -> tuple[str, str]:
    form = await request.form(max_part_size=MAX_FILE_BYTES)
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
        try:
            text, name = await _upload_text(request)
            items = parse_yaml(text, name)
            result = await service.apply(items, validate_only=True)
        except AccoladeError as exc:
            return render.page(request, "import.html", {"error": str(exc)}, 422)
        # The server answers created/updated/unchanged; the field diff is ours.
        current = {a.id: a for a in await all_achievements(console)}
        kinds = {
            **{i: "created" for i in result.created},
            **{i: "updated" for i in result.updated},
            **{i: "unchanged" for i in result.unchanged},
        }
        changes = [
            Change(
                a.id,
                kinds[a.id],
                forms.field_diff(current[a.id], a) if kinds[a.id] == "updated" else [],
            )
            for a in items
        ]
        return render.page(
            request, "import_preview.html", {"changes": changes, "text": text, "name": name}
        )

    async def apply(request: Request, session: Session | None) -> Response:
        form = await request.form()
        text = form.get("text")
        name = form.get("name")
        try:
            items = parse_yaml(text if isinstance(text, str) else "", str(name or "file"))
            result = await service.apply(items, validate_only=False)
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
