"""Proto3 JSON for the Connect API: requests parsed strictly (unknown fields refused,
named), responses written by a per-field writer with json_format's output."""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Callable
from typing import Any

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

_UNKNOWN_FIELD = re.compile(r'has no field named "([^"]+)" at "[^".\[]+\.?([^"]*)"')


class StrictJSONCodec:
    """Proto3 JSON that refuses unknown fields (the library ignores them), naming them,
    and writes responses with `to_json` (json_format's writer is most of the cost of a
    large response)."""

    def name(self) -> str:
        return "json"

    def encode(self, message: Message) -> bytes:
        return json.dumps(to_json(message), separators=(",", ":"), allow_nan=False).encode()

    def decode(self, data: bytes | bytearray, message_class: type[Message]) -> Message:
        message = message_class()
        try:
            json_format.Parse(bytes(data), message, ignore_unknown_fields=False)
        except json_format.ParseError as exc:
            raise ConnectError(Code.INVALID_ARGUMENT, _parse_message(str(exc))) from exc
        return message


def to_json(message: Message) -> Any:
    """`json_format.MessageToDict(message, always_print_fields_with_no_presence=True)`,
    faster: one converter per field, built once; well-known types other than Timestamp go
    to json_format itself. Zero values of fields without presence are written (`"current":
    0`, `"awards": []`), so a browser never has to guess what a missing field means; fields
    with presence (messages, `optional`, oneof members) appear only when set.
    `tests/unit/test_connect_json.py` holds the two equal."""
    descriptor = message.DESCRIPTOR
    if descriptor.full_name in _OWN_FORM:
        return (
            message.ToJsonString()  # type: ignore[attr-defined]
            if descriptor.full_name == "google.protobuf.Timestamp"
            else json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
        )
    defaults = _DEFAULTS.get(descriptor.full_name)
    if defaults is None:
        defaults = _DEFAULTS[descriptor.full_name] = _defaults_of(descriptor)
    out = {k: (type(v)() if isinstance(v, list | dict) else v) for k, v in defaults.items()}
    for fd, value in message.ListFields():
        convert = _CONVERTERS.get(fd)
        if convert is None:
            convert = _CONVERTERS[fd] = _converter(fd)
        out[fd.json_name] = convert(value)
    return out


def _defaults_of(descriptor: Any) -> dict[str, Any]:
    """The JSON of each field without presence when unset (lists and maps made anew per
    message)."""
    out: dict[str, Any] = {}
    for fd in descriptor.fields:
        if fd.has_presence:
            continue
        if fd.is_repeated:
            entry = fd.message_type
            out[fd.json_name] = {} if entry is not None and entry.GetOptions().map_entry else []
        else:
            out[fd.json_name] = _single(fd)(fd.default_value)
    return out


_OWN_FORM = frozenset(
    f"google.protobuf.{name}"
    for name in (
        "Timestamp", "Duration", "FieldMask", "Struct", "Value", "ListValue", "Any", "Empty",
        "DoubleValue", "FloatValue", "Int64Value", "UInt64Value", "Int32Value",
        "UInt32Value", "BoolValue", "StringValue", "BytesValue",
    )
)  # fmt: skip
_CONVERTERS: dict[FieldDescriptor, Callable[[Any], Any]] = {}
_DEFAULTS: dict[str, dict[str, Any]] = {}  # by message name
_INT64 = frozenset(
    {
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED64,
    }
)


def _single(fd: FieldDescriptor) -> Callable[[Any], Any]:
    if fd.message_type is not None:
        return to_json
    if fd.enum_type is not None:
        names = {v.number: v.name for v in fd.enum_type.values}
        return lambda v: names.get(v, v)
    if fd.type in _INT64:
        return str
    if fd.type == FieldDescriptor.TYPE_BYTES:
        return lambda v: base64.b64encode(v).decode()
    if fd.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return _number
    return _same


def _same(value: Any) -> Any:
    return value


def _number(value: float) -> Any:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _converter(fd: FieldDescriptor) -> Callable[[Any], Any]:
    entry = fd.message_type
    if entry is not None and entry.GetOptions().map_entry:
        key, val = _single(entry.fields_by_name["key"]), _single(entry.fields_by_name["value"])
        bool_keys = entry.fields_by_name["key"].type == FieldDescriptor.TYPE_BOOL
        return lambda m: {
            (("true" if k else "false") if bool_keys else str(key(k))): val(v) for k, v in m.items()
        }
    one = _single(fd)
    if fd.is_repeated:
        return lambda values: [one(v) for v in values]
    return one


def _parse_message(text: str) -> str:
    found = _UNKNOWN_FIELD.search(text)
    if found:
        where, name = found.group(2), found.group(1)
        return f"{where}.{name}: unknown field" if where else f"{name}: unknown field"
    return f"the request does not parse as JSON of its message: {text.splitlines()[0]}"
