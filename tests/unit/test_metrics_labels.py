"""`accolade_awards_total` keeps a bounded label set however many achievements award."""

from __future__ import annotations

from accolade_server.metrics import OTHER, Metrics


def test_award_labels_are_the_first_ids_seen_then_other() -> None:
    metrics = Metrics(max_achievement_labels=3)
    for n in range(50):
        aid = f"a{n % 10}"
        metrics.awards.labels(metrics.achievement_label(aid), "rule", "award").inc()
    values = {
        sample.labels["achievement_id"]: sample.value
        for family in metrics.registry.collect()
        if family.name == "accolade_awards"
        for sample in family.samples
        if sample.name == "accolade_awards_total"
    }
    assert set(values) == {"a0", "a1", "a2", OTHER}
    assert values[OTHER] == 35 and sum(values.values()) == 50
