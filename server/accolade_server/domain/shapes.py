"""Event shapes: which property paths events of a type carry, with which JSON types, and which
paths a rule reads. Pure; the store keeps shapes, the service learns them from events.

A path names a value below `event.properties`: keys joined by "." (`item.price`), a key that
is not an identifier in brackets (`["my-key"]`). Types are bit masks so that "every type seen
at this path" is one integer, merged with `|` (also in SQL).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from accolade_server.domain.model import Achievement, Aggregate

NULL, BOOL, NUMBER, STRING, LIST, OBJECT = 1, 2, 4, 8, 16, 32
TYPE_NAMES = {NULL: "null", BOOL: "bool", NUMBER: "number", STRING: "string", LIST: "list"}
TYPE_NAMES[OBJECT] = "object"
ALL_TYPES = NULL | BOOL | NUMBER | STRING | LIST | OBJECT

#: Observation bounds: objects deeper than this are recorded as objects, not looked into.
MAX_DEPTH = 4
#: Paths remembered per event type (further new paths of the type are not recorded).
MAX_PATHS_PER_TYPE = 64
#: Longest key recorded; longer keys are skipped (with everything below them).
MAX_KEY = 64
#: Longest path a declaration may name (the column's size).
MAX_PATH = 512

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def json_type(value: Any) -> int:
    """The bit of a JSON-like Python value."""
    if value is None:
        return NULL
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int | float):
        return NUMBER
    if isinstance(value, str):
        return STRING
    if isinstance(value, list | tuple):
        return LIST
    return OBJECT


def type_names(bits: int) -> list[str]:
    return [name for bit, name in sorted(TYPE_NAMES.items()) if bits & bit]


def join(path: str, key: str) -> str:
    """`path` extended by `key`, in the canonical path syntax."""
    if _IDENT.match(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


@dataclass(frozen=True, slots=True)
class PropertyShape:
    path: str
    declared: int = 0  # one type bit, or 0 when not declared
    observed: int = 0  # every type bit seen


@dataclass(frozen=True, slots=True)
class EventTypeShape:
    name: str
    properties: tuple[PropertyShape, ...] = ()


#: The path recorded for an event type itself (its properties object): "seen at all".
ROOT = ""


def properties_shape(properties: Mapping[str, Any]) -> Iterator[tuple[str, int]]:
    """Every (path, type bit) of an event's properties, objects included, within the bounds;
    first (ROOT, OBJECT), which records that the type was seen even without properties."""
    yield ROOT, OBJECT
    stack: list[tuple[str, Mapping[str, Any], int]] = [("", properties, 1)]
    while stack:
        prefix, obj, depth = stack.pop()
        for key, value in obj.items():
            if not isinstance(key, str) or len(key) > MAX_KEY:
                continue
            path = join(prefix, key)
            bit = json_type(value)
            yield path, bit
            if bit == OBJECT and depth < MAX_DEPTH:
                stack.append((path, value, depth + 1))


_PATH_SEGMENT = re.compile(r'\.?([A-Za-z_][A-Za-z0-9_]*)|\[\s*("(?:[^"\\]|\\.)*")\s*\]')


def parse_path(text: str) -> str:
    """A declared or rule-field path in canonical form; ValueError if it is not a path."""
    path, pos = "", 0
    while pos < len(text):
        m = _PATH_SEGMENT.match(text, pos)
        if (
            not m
            or (pos == 0 and text.startswith("."))
            or (pos > 0 and m.group(1) and text[pos] != ".")
        ):
            raise ValueError(f"{text!r} is not a property path (e.g. 'amount', 'item.price')")
        path = join(path, m.group(1) if m.group(1) else json.loads(m.group(2)))
        pos = m.end()
    if not path or len(path) > MAX_PATH:
        raise ValueError(f"{text!r} is not a property path (1-{MAX_PATH} characters)")
    return path


# -- what a condition reads ---------------------------------------------------------------

_STRING = r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\''
_LITERAL = rf"({_STRING}|-?\d+(?:\.\d*)?(?:[eE][+-]?\d+)?[uU]?|true|false|null)"
_READ = re.compile(
    r"(?<![\w.])event\s*\.\s*properties"
    rf"(?P<tail>(?:\s*\.\s*[A-Za-z_][A-Za-z0-9_]*(?![A-Za-z0-9_])(?!\s*\()|\s*\[\s*(?:{_STRING})\s*\])+)"
)
_SEGMENT = re.compile(rf"\s*\.\s*(?P<ident>[A-Za-z_][A-Za-z0-9_]*)|\s*\[\s*(?P<key>{_STRING})\s*\]")
_AFTER = re.compile(rf"\s*(?:==|!=|<=|>=|<|>)\s*{_LITERAL}|\s+in\s*\[\s*{_LITERAL}")
_BEFORE = re.compile(rf"{_LITERAL}\s*(?:==|!=|<=|>=|<|>)\s*$")


@dataclass(frozen=True, slots=True)
class Read:
    """A property path a rule reads, and the type it is compared with (0: none known)."""

    path: str
    compared_with: int = 0
    where: str = "rule.condition"


def _literal_type(text: str) -> int:
    if text[0] in "\"'":
        return STRING
    if text in ("true", "false"):
        return BOOL
    if text == "null":
        return NULL
    return NUMBER


def _key(literal: str) -> str:
    if literal.startswith("'"):
        literal = '"' + literal[1:-1].replace('"', '\\"') + '"'
    try:
        return str(json.loads(literal))
    except json.JSONDecodeError:
        return literal[1:-1]


def condition_reads(condition: str) -> list[Read]:
    """The `event.properties…` paths a CEL condition reads, conservatively (a scan, not a
    parse): literal keys and member access only, method calls end a path, and a comparison
    with a literal right before or after the path gives the compared type."""
    reads = []
    for m in _READ.finditer(condition):
        path = ""
        for seg in _SEGMENT.finditer(m.group("tail")):
            path = join(path, seg.group("ident") or _key(seg.group("key")))
        after = _AFTER.match(condition, m.end())
        before = _BEFORE.search(condition[: m.start()])
        lit = None
        if after:
            lit = next(g for g in after.groups() if g)
        elif before:
            lit = before.group(1)
        reads.append(Read(path, _literal_type(lit) if lit else 0))
    return reads


def rule_reads(a: Achievement) -> list[Read]:
    """Every property path the rule reads: its condition's and its aggregate's field."""
    reads = condition_reads(a.rule.condition)
    if a.rule.field:
        try:
            path = parse_path(a.rule.field)
        except ValueError:
            return reads
        wanted = NUMBER if a.rule.aggregate in (Aggregate.SUM, Aggregate.MAX) else 0
        reads.append(Read(path, wanted, "rule.field"))
    return reads


# -- checking a rule against the shapes ---------------------------------------------------

Shapes = Mapping[str, Mapping[str, int]]  # event type -> path -> type bits


def _deeper_than_observed(path: str, shape: Mapping[str, int]) -> bool:
    """True when a prefix of `path` is an object recorded without its contents (too deep)."""
    for known, bits in shape.items():
        below = path.startswith(known) and path[len(known) : len(known) + 1] in (".", "[")
        depth = known.count(".") + known.count("[") + 1
        if known and bits & OBJECT and below and depth >= MAX_DEPTH:
            return True
    return False


def warnings(a: Achievement, shapes: Shapes) -> list[str]:
    """Why the rule of `a` may never fire, judged against what its event types carry."""
    reads = rule_reads(a)
    if not reads or not a.rule.event_types:
        return []
    types = ", ".join(a.rule.event_types)
    known = {t: shapes[t] for t in a.rule.event_types if t in shapes}
    if not known:
        paths = ", ".join(sorted({f"event.properties.{r.path}" for r in reads}))
        return [
            f"{a.id}: no event of type {types} has been seen or declared yet, so {paths} "
            "cannot be checked (declare the type's properties with DeclareEventType or "
            "`event_types:` in a definitions file)"
        ]
    out = []
    all_paths = sorted({p for shape in known.values() for p in shape if p != ROOT})
    for r in reads:
        carried = [shape[r.path] for shape in known.values() if r.path in shape]
        if not carried:
            if any(_deeper_than_observed(r.path, shape) for shape in known.values()):
                continue
            close = difflib.get_close_matches(r.path, all_paths, n=1)
            listed = ", ".join(all_paths[:10]) + (", …" if len(all_paths) > 10 else "")
            out.append(
                f"{a.id}: {r.where} reads event.properties.{r.path}, which no {types} event has "
                f"carried (known: {listed or 'none'})"
                + (f"; did you mean {close[0]}?" if close else "")
            )
            continue
        bits = 0
        for b in carried:
            bits |= b
        if r.compared_with and r.compared_with != NULL and not bits & r.compared_with:
            what = "compares" if r.where == "rule.condition" else "sums or maximises"
            out.append(
                f"{a.id}: {r.where} {what} event.properties.{r.path} as a "
                f"{TYPE_NAMES[r.compared_with]}, but in {types} events it has been "
                f"{' or '.join(type_names(bits))}"
            )
    return out
