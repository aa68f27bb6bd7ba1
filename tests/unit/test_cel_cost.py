"""CEL conditions with unbounded evaluation cost are refused when they are defined."""

from __future__ import annotations

import pytest

from accolade_server.domain.errors import InvalidArgument
from accolade_server.rules.cel import MAX_COMPREHENSIONS, compile_condition

LIST = "event.properties.items"


@pytest.mark.parametrize(
    "condition",
    [
        f"{LIST}.exists(i, i.price > 10)",
        f"{LIST}.filter(i, i.price > 10).size() >= 2 && {LIST}.all(i, i.qty > 0)",
        f"{LIST}.map(i, i.price).exists(p, p > 100)",  # chained, not nested
        'event.properties.note == "use .all( and .map( freely in strings"',
        " && ".join([f"{LIST}.exists(i, i.qty > {n})" for n in range(MAX_COMPREHENSIONS)]),
    ],
)
def test_a_few_flat_comprehensions_are_accepted(condition: str) -> None:
    assert compile_condition(condition) is not None


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (f"{LIST}.all(a, {LIST}.exists(b, a != b))", "nests .exists() inside .all()"),
        (f"{LIST}.map(a, {LIST}.map(b, a + b)).size() > 0", "nests .map() inside .map()"),
        (
            " || ".join([f"{LIST}.exists(i, i.qty > {n})" for n in range(5)]),
            f"uses 5 comprehension macros (all, exists, exists_one, map, filter); "
            f"at most {MAX_COMPREHENSIONS}",
        ),
    ],
)
def test_nested_or_many_comprehensions_are_refused_naming_the_field(
    condition: str, message: str
) -> None:
    with pytest.raises(InvalidArgument) as info:
        compile_condition(condition)
    assert info.value.field == "condition"
    assert message in str(info.value)
