"""An OpenAPI 3.1 document of the Connect JSON API, walked from the proto descriptors.

Each unary RPC is `POST /<package>.<Service>/<Method>` with the request message as the JSON
body and the response message (200) or a Connect error (any other status) as the answer.
Schemas follow the proto3 JSON mapping: lowerCamel field names, 64-bit integers as decimal
strings, enums by name, well-known types in their JSON forms; zero values may be omitted,
so nothing is `required`. Unknown fields are refused (`additionalProperties: false`).
Server-streaming RPCs (Connect's enveloped stream) have no OpenAPI form and are listed in
the description instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor, FileDescriptor

Schema = dict[str, Any]

ERROR = "connect.Error"
_INT32 = {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}
_UINT32 = {"type": "integer", "minimum": 0, "maximum": 2**32 - 1}
_INT64 = {"type": "string", "pattern": "^-?[0-9]{1,19}$"}
_UINT64 = {"type": "string", "pattern": "^[0-9]{1,20}$"}
_SCALARS: dict[int, Schema] = {
    FieldDescriptor.TYPE_DOUBLE: {"type": "number"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number"},
    FieldDescriptor.TYPE_INT32: _INT32,
    FieldDescriptor.TYPE_SINT32: _INT32,
    FieldDescriptor.TYPE_SFIXED32: _INT32,
    FieldDescriptor.TYPE_UINT32: _UINT32,
    FieldDescriptor.TYPE_FIXED32: _UINT32,
    FieldDescriptor.TYPE_INT64: _INT64,
    FieldDescriptor.TYPE_SINT64: _INT64,
    FieldDescriptor.TYPE_SFIXED64: _INT64,
    FieldDescriptor.TYPE_UINT64: _UINT64,
    FieldDescriptor.TYPE_FIXED64: _UINT64,
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
}
#: Well-known types with a JSON form of their own.
_WELL_KNOWN: dict[str, Schema] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array"},
    "google.protobuf.Empty": {"type": "object", "additionalProperties": False},
    **{
        f"google.protobuf.{name}Value": schema
        for name, schema in (
            ("Double", {"type": "number"}),
            ("Float", {"type": "number"}),
            ("Int32", _INT32),
            ("UInt32", _UINT32),
            ("Int64", _INT64),
            ("UInt64", _UINT64),
            ("Bool", {"type": "boolean"}),
            ("String", {"type": "string"}),
            ("Bytes", {"type": "string", "contentEncoding": "base64"}),
        )
    },
}
_CONNECT_CODES = [
    "canceled", "unknown", "invalid_argument", "deadline_exceeded", "not_found",
    "already_exists", "permission_denied", "resource_exhausted", "failed_precondition",
    "aborted", "out_of_range", "unimplemented", "internal", "unavailable", "data_loss",
    "unauthenticated",
]  # fmt: skip


class _Walker:
    def __init__(self) -> None:
        self.schemas: dict[str, Schema] = {}

    def ref(self, message: Descriptor) -> Schema:
        known = _WELL_KNOWN.get(message.full_name)
        if known is not None:
            return dict(known)
        if message.full_name not in self.schemas:
            self.schemas[message.full_name] = {}  # placeholder: messages may recurse
            self.schemas[message.full_name] = self.message(message)
        return {"$ref": f"#/components/schemas/{message.full_name}"}

    def message(self, message: Descriptor) -> Schema:
        properties = {f.json_name: self.field(f) for f in message.fields}
        return {
            "type": "object",
            "title": message.name,
            "properties": properties,
            "additionalProperties": False,
        }

    def field(self, f: FieldDescriptor) -> Schema:
        entry = f.message_type
        if entry is not None and entry.GetOptions().map_entry:
            return {"type": "object", "additionalProperties": self.single(entry.fields[1])}
        if f.is_repeated:
            return {"type": "array", "items": self.single(f)}
        return self.single(f)

    def single(self, f: FieldDescriptor) -> Schema:
        if f.message_type is not None:
            return self.ref(f.message_type)
        if f.enum_type is not None:
            return {"type": "string", "enum": [v.name for v in f.enum_type.values]}
        return dict(_SCALARS[f.type])


def openapi_document(files: Iterable[FileDescriptor], *, version: str) -> dict[str, Any]:
    walker = _Walker()
    paths: dict[str, Any] = {}
    streams: list[str] = []
    for file in files:
        for service in file.services_by_name.values():
            for method in service.methods:
                path = f"/{service.full_name}/{method.name}"
                if method.client_streaming or method.server_streaming:
                    streams.append(path)
                    continue
                paths[path] = {"post": _operation(walker, service.name, method)}
    walker.schemas[ERROR] = {
        "type": "object",
        "properties": {
            "code": {"type": "string", "enum": _CONNECT_CODES},
            "message": {"type": "string"},
            "details": {"type": "array"},
        },
        "required": ["code"],
    }
    description = (
        "The Connect protocol's JSON form of the gRPC API (same methods, messages, API keys "
        "and errors). Reads marked NO_SIDE_EFFECTS also answer GET with "
        "`?encoding=json&message=<url-encoded JSON>`. Server-streaming RPCs, served with "
        "`Content-Type: application/connect+json` (enveloped messages): " + ", ".join(streams)
    )
    return {
        "openapi": "3.1.0",
        "info": {"title": "Accolade", "version": version, "description": description},
        "paths": paths,
        "components": {
            "schemas": dict(sorted(walker.schemas.items())),
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
    }


def _json(schema: Schema) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _operation(walker: _Walker, service: str, method: Any) -> dict[str, Any]:
    return {
        "operationId": f"{service}.{method.name}",
        "tags": [service],
        # An API key, or none at all on a keyless server (loopback callers only).
        "security": [{"apiKey": []}, {}],
        "requestBody": {"required": True, "content": _json(walker.ref(method.input_type))},
        "responses": {
            "200": {
                "description": "The response message",
                "content": _json(walker.ref(method.output_type)),
            },
            "default": {
                "description": "A Connect error; the HTTP status follows its code",
                "content": _json({"$ref": f"#/components/schemas/{ERROR}"}),
            },
        },
    }
