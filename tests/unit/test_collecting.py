"""A save's events collected without runtime-Protocol checks (domain/collecting.py): the same
events, in the same order, and the same aggregates as eventsourcing's own collection."""
from __future__ import annotations

from eventsourcing.application import ProcessingEvent
from eventsourcing.domain import Aggregate, event

from domain.collecting import AggregatesFirst

class Counter(Aggregate):
    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0

    @event("Counted")
    def count_up(self, by: int) -> None:
        self.count += by

def counters() -> tuple[Counter, Counter, Aggregate.Event]:
    first, second = Counter("first"), Counter("second")
    first.count_up(2)
    second.count_up(3)
    first.count_up(4)
    loose = Counter("loose")  # an event given on its own, not through its aggregate
    (event,) = loose.collect_events()
    return first, second, event

def collected(kind: type[ProcessingEvent]) -> tuple[list[tuple[object, int, str]], dict[object, str], dict[str, object]]:
    first, second, event = counters()
    processing = kind()
    processing.collect_events(first, None, event, second, marker="kept")
    events = [(e.originator_id, e.originator_version, type(e).__qualname__) for e in processing.events]
    assert first.collect_events() == [] and second.collect_events() == []  # taken off the aggregates
    return events, {key: value.name for key, value in processing.aggregates.items()}, processing.saved_kwargs

def test_the_same_events_and_aggregates_as_eventsourcings_own() -> None:
    ours, theirs = collected(AggregatesFirst), collected(ProcessingEvent)
    assert [(version, name) for _, version, name in ours[0]] == [(version, name) for _, version, name in theirs[0]] == [
        (1, "Counter.Created"), (2, "Counter.Counted"), (3, "Counter.Counted"),  # first
        (1, "Counter.Created"),  # the loose event, where it was given
        (1, "Counter.Created"), (2, "Counter.Counted"),  # second
    ]
    assert sorted(ours[1].values()) == sorted(theirs[1].values()) == ["first", "second"]
    assert ours[2] == theirs[2] == {"marker": "kept"}

def test_each_event_stays_with_its_aggregate() -> None:
    events, aggregates, _ = collected(AggregatesFirst)
    first, second = list(aggregates)
    loose = events[3][0]
    assert loose not in aggregates
    assert [originator for originator, _, _ in events] == [first, first, first, loose, second, second]
