"""E-commerce: a welcome badge on a customer's first purchase (run `make run` first)."""

from accolade import Achievement, Client, Rule

rule = Rule(event_types=["purchase_completed"])
welcome = Achievement(id="welcome-badge", title="Welcome!", points=10, rule=rule)

with Client() as client:  # 127.0.0.1:50051 (make run), or $ACCOLADE_TARGET
    client.apply_achievements([welcome])  # create or update: safe to run again
    result = client.track_event("purchase_completed", user_id="user_123", amount=42)
    for award in result.awards:
        print(f"user_123 earned {award.achievement_id} (+{award.points} points)")
