"""Fitness: a badge for working out seven days in a row (run `make run` first).

Workouts are back-dated with `occurred_at`, so one run shows a whole week; each workout has
its own `event_id`, so running the program again counts nothing twice.
"""

from datetime import UTC, datetime, timedelta

from accolade import Client

USER = "runner_42"

with Client() as client:
    client.apply_achievements(
        [
            {
                "id": "seven-day-streak",
                "title": "7-day streak",
                "description": "Work out seven days in a row.",
                "points": 70,
                "rule": {
                    "event_types": ["workout_completed"],
                    "aggregate": "streak_days",
                    "target": 7,
                },
            }
        ]
    )
    today = datetime.now(UTC)
    for days_ago in range(6, -1, -1):
        day = today - timedelta(days=days_ago)
        result = client.track_event(
            "workout_completed",
            user_id=USER,
            event_id=f"{USER}-workout-{day:%Y-%m-%d}",
            occurred_at=day,
            minutes=30,
        )
        streak = next((p for p in result.progress if p.achievement_id == "seven-day-streak"), None)
        streak_days = f"{streak.current:.0f}/{streak.target:.0f}" if streak else "?"
        again = " (logged before: counted once)" if result.duplicate else ""
        print(f"{day:%a %d %b}: workout logged, streak {streak_days} days{again}")
        for award in [] if result.duplicate else result.awards:  # a duplicate repeats them
            print(f"  {USER} earned {award.achievement_id}!")
