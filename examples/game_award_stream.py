"""Game backend: push every award to players as it happens, surviving server restarts.

Run `make run`, then this program; track events from elsewhere (`accolade track match_won
--user p1`). Stop the server and start it again: the stream resumes where it stopped. The
last cursor is saved to a file, so restarting this program resumes too, with nothing missed
and nothing shown twice. `--limit N` stops after N awards. The cursor file is kept with the
user's state files (`$XDG_STATE_HOME/accolade/`, by default `~/.local/state/accolade/`), not in
the directory it runs from; `--cursor-file PATH` picks another.
"""

import argparse
import asyncio
import os
from pathlib import Path

from accolade import AsyncClient


def default_cursor_file() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state) / "accolade" / "game-award-cursor.txt"


def saved_cursor(cursor_file: Path) -> int | None:
    cursor_file.parent.mkdir(parents=True, exist_ok=True)
    return int(cursor_file.read_text()) if cursor_file.exists() else None


async def main(cursor_file: Path, saved: int | None, limit: int | None) -> None:
    async with AsyncClient() as client:
        await client.apply_achievements(
            [
                {
                    "id": "first-win",
                    "title": "First win",
                    "rule": {"event_types": ["match_won"]},
                    "points": 5,
                }
            ]
        )
        seen = 0
        async with client.watch_awards(after_cursor=saved) as stream:
            print(f"streaming awards after cursor {stream.cursor}", flush=True)
            async for award in stream:
                verb = "lost" if award.revoked else "earned"
                print(f"notify {award.user_id}: you {verb} {award.achievement_id}", flush=True)
                # Saved after handling: a crash in between shows that award again on restart.
                await asyncio.to_thread(cursor_file.write_text, str(award.cursor))
                seen += 1
                if limit is not None and seen >= limit:
                    return


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="stop after this many awards")
    parser.add_argument("--cursor-file", type=Path, default=default_cursor_file())
    args = parser.parse_args()
    asyncio.run(main(args.cursor_file, saved_cursor(args.cursor_file), args.limit))
