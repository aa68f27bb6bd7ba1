"""CEL conditions: compiled once per source text, cached, with readable errors."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import cel

from accolade_server.domain.errors import InvalidArgument

#: Variables a condition may read.
CONDITION_VARIABLES = frozenset({"event"})
_MACROS = re.compile(r"\.\s*(all|exists|exists_one|map|filter)\s*\(")
_PREFIX = re.compile(r"^Failed to parse expression .*?': ", re.DOTALL)


def _readable(message: str) -> str:
    """Turn the library's message into `Syntax error at 1:21: …` plus the caret lines."""
    message = _PREFIX.sub("", message)
    message = re.sub(
        r"ERROR: <input>:(\d+):(\d+): Syntax error:", r"Syntax error at \1:\2:", message
    )
    return message.strip()


@lru_cache(maxsize=65536)
def compile_condition(source: str) -> Any:
    """Compile a condition; raise InvalidArgument (field `condition`) if it does not compile.

    Cached by source text, so every definition version sharing a condition shares one program.
    """
    try:
        program = cel.compile(source)
    except (ValueError, RuntimeError) as exc:
        raise InvalidArgument(_readable(str(exc)), field="condition") from exc
    unknown = set(program.variables()) - CONDITION_VARIABLES
    # Comprehension macros bind their own names (e.g. `x` in `.exists(x, …)`).
    if unknown and not _MACROS.search(source):
        names = ", ".join(sorted(unknown))
        raise InvalidArgument(
            f"unknown variable {names}; conditions read `event` "
            "(event.type, event.user_id, event.properties, event.occurred_at)",
            field="condition",
        )
    return program
