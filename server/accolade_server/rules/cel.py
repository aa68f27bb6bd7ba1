"""CEL conditions: compiled once per source text, cached, with readable errors."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import cel

from accolade_server.domain.errors import InvalidArgument

#: Variables a condition may read.
CONDITION_VARIABLES = frozenset({"event", "user"})
_MACROS = re.compile(r"\.\s*(all|exists|exists_one|map|filter)\s*\(")
#: Evaluation cost bounds. CEL has no loops, only comprehension macros; a macro's cost is the
#: length of the list it walks (bounded by `max_property_list_items`), squared for `map` and
#: `filter` in this library, and multiplied when nested. So: a few macros, none in another.
MAX_COMPREHENSIONS = 4
_STRINGS = re.compile(
    r"'''.*?'''|\"\"\".*?\"\"\"|'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\"", re.DOTALL
)
#: `user.<name>` not preceded by another name (`event.properties.user.x` is a property).
_USER_FIELD = re.compile(r"(?<![.\w])user\s*\.\s*(\w+)")
_PREFIX = re.compile(r"^Failed to parse expression .*?': ", re.DOTALL)


def _readable(message: str) -> str:
    """Turn the library's message into `Syntax error at 1:21: …` plus the caret lines."""
    message = _PREFIX.sub("", message)
    message = re.sub(
        r"ERROR: <input>:(\d+):(\d+): Syntax error:", r"Syntax error at \1:\2:", message
    )
    return message.strip()


def _check_cost(source: str) -> None:
    """Refuse conditions whose evaluation cost the input limits would not bound."""
    code = _STRINGS.sub('""', source)  # a macro name inside a string literal is no macro
    macros = list(_MACROS.finditer(code))
    if len(macros) > MAX_COMPREHENSIONS:
        raise InvalidArgument(
            f"uses {len(macros)} comprehension macros (all, exists, exists_one, map, filter); "
            f"at most {MAX_COMPREHENSIONS} are allowed, to bound evaluation cost",
            field="condition",
        )
    for outer in macros:
        depth, end = 1, outer.end()
        while end < len(code) and depth:
            depth += {"(": 1, ")": -1}.get(code[end], 0)
            end += 1
        inner = _MACROS.search(code, outer.end(), end)
        if inner is not None:
            raise InvalidArgument(
                f"nests .{inner.group(1)}() inside .{outer.group(1)}(); comprehension macros "
                "may not be nested, to bound evaluation cost",
                field="condition",
            )


@lru_cache(maxsize=65536)
def compile_condition(source: str) -> Any:
    """Compile a condition; raise InvalidArgument (field `condition`) if it does not compile.

    Cached by source text, so every definition version sharing a condition shares one program.
    """
    try:
        program = cel.compile(source)
    except (ValueError, RuntimeError) as exc:
        raise InvalidArgument(_readable(str(exc)), field="condition") from exc
    _check_cost(source)
    unknown = set(program.variables()) - CONDITION_VARIABLES
    # Comprehension macros bind their own names (e.g. `x` in `.exists(x, …)`).
    if unknown and not _MACROS.search(source):
        names = ", ".join(sorted(unknown))
        raise InvalidArgument(
            f"unknown variable {names}; conditions read `event` "
            "(event.type, event.user_id, event.properties, event.occurred_at) and "
            "`user` (user.attributes)",
            field="condition",
        )
    if "user" in program.variables() and not _MACROS.search(source):
        for found in _USER_FIELD.finditer(_STRINGS.sub('""', source)):
            if found.group(1) != "attributes":
                raise InvalidArgument(
                    f"user.{found.group(1)} does not exist; conditions read the user's "
                    "profile attributes as user.attributes (e.g. user.attributes.plan)",
                    field="condition",
                )
    return program


def reads_user(program: Any) -> bool:
    """Whether a compiled condition reads `user` (so events need their users' attributes)."""
    return "user" in program.variables()
