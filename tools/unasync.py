"""Generate the blocking client (`_client.py`) from the asyncio one (`_aio.py`).

The two clients offer the same calls with the same arguments, retries and errors; writing
them twice would let them drift. As httpcore does with `unasync`, the blocking one is the
async source with `async`/`await` taken out. Run by `make proto`; a test fails when the
committed `_client.py` is stale.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# Whole-word replacements, applied in order.
WORDS = [
    ("AsyncAwardStream", "AwardStream"),
    ("AsyncClient", "Client"),
    ("AsyncIterator", "Iterator"),
    ("__aenter__", "__enter__"),
    ("__aexit__", "__exit__"),
    ("StopAsyncIteration", "StopIteration"),
]
# Literal replacements, applied in order after the words.
TEXT = [
    (
        '"""The asyncio client. `_client.py` (the blocking one) is generated from this file by\n'
        '`tools/unasync.py` (`make proto`); edit this one."""',
        '"""The blocking client, generated from `_aio.py` by `tools/unasync.py`: edit that one."""',
    ),
    (" (asyncio: await each call)", ""),
    ("import asyncio\nimport logging\n", "import logging\nimport time\n"),
    (
        "from collections.abc import Iterator, Awaitable, Callable, Iterable, Mapping, Sequence",
        "from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence",
    ),
    ("asyncio.sleep(", "time.sleep("),
    ("grpc.aio.", "grpc."),
    ("Awaitable[R]", "R"),
    ("Awaitable, ", ""),
    ("async def ", "def "),
    ("async with ", "with "),
    ("async for ", "for "),
    ("await ", ""),
]


# `async for x in xs: yield x` has no `yield from` in async code; the blocking one has.
YIELD_EACH = re.compile(r"for (\w+) in ([^\n]+):\n\s+yield \1\n")


def unasync(source: str) -> str:
    for old, new in WORDS:
        source = re.sub(rf"\b{old}\b", new, source)
    for old, new in TEXT:
        source = source.replace(old, new)
    return YIELD_EACH.sub(r"yield from \2\n", source)


def generate(client_dir: Path) -> Path:
    package = client_dir / "accolade"
    target = package / "_client.py"
    target.write_text(unasync((package / "_aio.py").read_text(encoding="utf-8")), encoding="utf-8")
    return target


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]
    print(f"wrote {generate(root / 'client')}")
