"""Learning platform: levels as tiers of one achievement, earned by XP (run `make run` first)."""

import sys

from accolade import Client

LEVELS = [("level-1", 100, 10), ("level-2", 300, 20), ("level-3", 600, 50)]

user = sys.argv[1] if len(sys.argv) > 1 else "learner_7"
with Client() as client:
    client.apply_achievements(
        [
            {
                "id": "scholar",
                "title": "Scholar",
                "category": "learning",
                "rule": {"event_types": ["lesson_completed"], "aggregate": "sum", "field": "xp"},
                "tiers": [{"name": n, "threshold": t, "points": p} for n, t, p in LEVELS],
            }
        ]
    )
    for lesson, xp in [("intro", 80), ("variables", 120), ("loops", 150), ("functions", 300)]:
        result = client.track_event(
            "lesson_completed", user_id=user, event_id=f"{user}-{lesson}", lesson=lesson, xp=xp
        )
        for award in [] if result.duplicate else result.awards:  # run twice: counted once
            print(f"{user} reached {award.tier} (+{award.points} points) after {lesson!r}")
    [scholar] = client.get_progress(user, achievement_ids=["scholar"]).progress
    print(
        f"{user}: {scholar.tier or 'no level yet'}, {scholar.current:.0f} XP, "
        f"{scholar.overall_percent:.0f}% of the way to the top level"
    )
