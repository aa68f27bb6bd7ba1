"""One spelling rule for enum values, used by definitions files, the SDK and the CLI.

`sum`, `SUM`, `Sum` and `AGGREGATE_SUM` all name `Aggregate.AGGREGATE_SUM` (so do its number
and `streak-days` for `STREAK_DAYS`); output uses the short lower-case name (`sum`).
"""

from __future__ import annotations

from typing import Any

#: A generated protobuf enum (`accolade.Aggregate`, …) or its `EnumDescriptor`.
EnumType = Any


def _descriptor(enum: EnumType) -> Any:
    return getattr(enum, "DESCRIPTOR", enum)


def _prefix(enum: EnumType) -> str:
    """`AGGREGATE_` for Aggregate: the zero value's name without `UNSPECIFIED`."""
    zero = _descriptor(enum).values_by_number[0].name
    return str(zero).removesuffix("UNSPECIFIED")


def choices(enum: EnumType) -> list[str]:
    """The short names a user may write, without the unspecified value: `count`, `sum`, …"""
    prefix = _prefix(enum)
    return [str(v.name).removeprefix(prefix).lower() for v in _descriptor(enum).values if v.number]


def short_name(enum: EnumType, number: int) -> str:
    """`sum` for AGGREGATE_SUM; the number as text when it is not a known value."""
    value = _descriptor(enum).values_by_number.get(number)
    if value is None:
        return str(number)
    return str(value.name).removeprefix(_prefix(enum)).lower()


def parse_enum(enum: EnumType, value: Any, *, what: str | None = None) -> int:
    """The number of `value` in `enum`, in any spelling (see the module docstring).

    Raises ValueError naming the valid short names, e.g. ``'summ' is not an aggregate; use
    one of count, sum, max, distinct, streak_days``.
    """
    descriptor = _descriptor(enum)
    label = what or _label(descriptor.name)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{value!r} is not {label}; use one of {', '.join(choices(enum))}")
    if isinstance(value, int):
        if value in descriptor.values_by_number:
            return value
    else:
        name = value.strip().upper().replace("-", "_").replace(" ", "_")
        name = name.rsplit(".", 1)[-1]  # `Aggregate.SUM`
        prefix = _prefix(enum)
        for candidate in (name, prefix + name):
            found = descriptor.values_by_name.get(candidate)
            if found is not None:
                return int(found.number)
    raise ValueError(f"{value!r} is not {label}; use one of {', '.join(choices(enum))}")


def _label(type_name: str) -> str:
    """`an aggregate`, `a progress policy` from the enum's type name."""
    words = "".join(f" {c.lower()}" if c.isupper() else c for c in type_name).strip()
    return ("an " if words[0] in "aeiou" else "a ") + words
