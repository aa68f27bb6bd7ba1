"""Condition errors: logged at most once per interval each, with
bounded metric labels."""

from __future__ import annotations

from structlog.testing import capture_logs

from accolade_server.metrics import OTHER, Metrics
from accolade_server.service.diagnostics import ConditionErrors


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_log_lines_are_rate_limited_per_achievement_and_say_what_was_skipped() -> None:
    clock = Clock()
    errors = ConditionErrors(Metrics(), log_interval=60, clock=clock)
    with capture_logs() as logs:
        for n in range(5):
            errors.record("a", f"error {n}", event_id=f"e{n}")
        errors.record("b", "other", event_id="x")
        clock.now = 59.9
        errors.record("a", "error 5", event_id="e5")
        clock.now = 60.0
        errors.record("a", "error 6", event_id="e6")
    assert [(e["achievement_id"], e["error"]) for e in logs] == [
        ("a", "error 0"),
        ("b", "other"),
        ("a", "error 6"),
    ]
    assert logs[-1]["errors_since_last_line"] == 6
    assert {e["log_level"] for e in logs} == {"warning"}


def test_achievement_labels_are_bounded() -> None:
    metrics = Metrics(max_achievement_labels=2)
    assert [metrics.achievement_label(a) for a in ("a", "b", "c", "a", "d", "b")] == [
        "a",
        "b",
        OTHER,
        "a",
        OTHER,
        "b",
    ]
    assert Metrics(max_achievement_labels=0).achievement_label("a") == OTHER
