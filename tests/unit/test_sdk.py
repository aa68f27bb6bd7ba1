"""The SDK's public surface and its I/O-free parts: errors, retries, batches, stream cursors."""

from __future__ import annotations

import types

import grpc
import pytest

import accolade
from accolade import _errors
from accolade._retry import RetryPolicy, is_transient
from accolade._state import MAX_BATCH, Batch, Watch, status_code
from accolade.cli._verbs import prop
from accolade.v1 import tracker_pb2 as tpb
from accolade.v1 import types_pb2 as pb


def _isort_key(name: str) -> tuple[int, str]:
    """The order ruff's RUF022 keeps: CONSTANTS, then Classes, then functions and dunders."""
    if name.isupper():
        return (0, name)
    return (1, name) if name[0].isupper() else (2, name)


def test_the_public_surface_is_a_sorted_all_of_everything_exported() -> None:
    assert accolade.__all__ == sorted(accolade.__all__, key=_isort_key)
    public = {
        name
        for name, value in vars(accolade).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public | {"__version__"} == set(accolade.__all__)
    assert {"Client", "AsyncClient", "AccoladeError", "TLS", "RetryPolicy"} <= public


@pytest.mark.parametrize("code", list(grpc.StatusCode), ids=lambda c: c.name)
def test_every_status_becomes_an_rpc_error_carrying_code_and_message(
    code: grpc.StatusCode,
) -> None:
    error = _errors.error_for(code, "user_id: is required")
    assert isinstance(error, accolade.RPCError) and isinstance(error, accolade.AccoladeError)
    assert error.code == code and error.message == "user_id: is required"
    assert str(error) == f"{code.name}: user_id: is required"


def test_each_exported_error_class_is_what_its_code_maps_to() -> None:
    classes = [
        getattr(accolade, name)
        for name in accolade.__all__
        if name.endswith("Error") and name not in ("AccoladeError", "RPCError", "DefinitionError")
    ]
    assert len(classes) == 11
    for cls in classes:
        assert type(_errors.error_for(cls.code, "m")) is cls
    assert issubclass(accolade.DefinitionError, accolade.AccoladeError)


def test_google_rpc_code_numbers_map_to_status_codes() -> None:
    assert status_code(3) is grpc.StatusCode.INVALID_ARGUMENT
    assert status_code(14) is grpc.StatusCode.UNAVAILABLE
    assert status_code(999) is grpc.StatusCode.UNKNOWN


def test_only_transient_codes_are_retried() -> None:
    assert is_transient(grpc.StatusCode.UNAVAILABLE)
    assert is_transient(grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert is_transient(grpc.StatusCode.DEADLINE_EXCEEDED)
    assert not is_transient(grpc.StatusCode.INVALID_ARGUMENT)
    assert not is_transient(grpc.StatusCode.PERMISSION_DENIED)
    assert not is_transient(None)


def test_backoff_grows_up_to_its_cap_and_bad_policies_are_refused() -> None:
    policy = RetryPolicy(initial_backoff=0.1, max_backoff=1.0, multiplier=2)
    for retry, ceiling in ((1, 0.1), (2, 0.2), (3, 0.4), (10, 1.0)):
        delays = [policy.backoff(retry) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2  # jitter spreads over the whole range
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="backoff"):
        RetryPolicy(initial_backoff=2, max_backoff=1)


def test_tls_client_certificate_and_key_go_together() -> None:
    with pytest.raises(ValueError, match="together"):
        accolade.TLS(certificate_chain=b"cert")


def _result(event_id: str, code: int = 0) -> tpb.TrackEventResult:
    if code:
        return tpb.TrackEventResult(event_id=event_id, error=tpb.EventError(code=code, message="m"))
    return tpb.TrackEventResult(event_id=event_id, outcome=tpb.TrackEventResponse(tracked=True))


def test_a_batch_is_chunked_and_resends_only_transient_failures() -> None:
    requests = [tpb.TrackEventRequest(event_id=f"e{i}") for i in range(MAX_BATCH + 3)]
    batch = Batch(requests)
    chunks = batch.chunks()
    assert [len(c) for c in chunks] == [MAX_BATCH, 3]
    for chunk in chunks:
        codes = {0: 14, 1: 3}  # e0 unavailable (retry), e1 invalid (final)
        batch.record(
            chunk,
            tpb.TrackEventsResponse(results=[_result(f"e{i}", codes.get(i, 0)) for i in chunk]),
        )
    assert batch.retry_transient()
    assert batch.pending == [0]
    assert [e.event_id for e in batch.request(batch.pending).events] == ["e0"]
    batch.record([0], tpb.TrackEventsResponse(results=[_result("e0")]))
    assert not batch.retry_transient()
    final = batch.final()
    assert [accolade.event_error(r) is None for r in final[:3]] == [True, False, True]
    assert isinstance(accolade.event_error(final[1]), accolade.InvalidArgumentError)


def test_a_batch_answer_of_the_wrong_length_is_an_error() -> None:
    batch = Batch([tpb.TrackEventRequest(event_id="a"), tpb.TrackEventRequest(event_id="b")])
    with pytest.raises(accolade.InternalError, match="1 results for 2 events"):
        batch.record([0, 1], tpb.TrackEventsResponse(results=[_result("a")]))


def _watch(after: int | None = None, max_reconnects: int | None = None) -> Watch:
    return Watch(
        user_ids=["u1"],
        achievement_ids=[],
        source=pb.AWARD_SOURCE_UNSPECIFIED,
        after_cursor=after,
        retry=RetryPolicy(initial_backoff=0.01, max_backoff=0.01),
        max_reconnects=max_reconnects,
    )


def _entry(cursor: int) -> tpb.WatchAwardsResponse:
    return tpb.WatchAwardsResponse(cursor=cursor, award=pb.Award(cursor=cursor, user_id="u1"))


def test_a_live_watch_resumes_after_the_announced_start_cursor() -> None:
    watch = _watch()
    assert not watch.request().HasField("after_cursor")  # live
    watch.connected([("accolade-start-cursor", "41")])
    assert watch.request().after_cursor == 41  # a reconnect misses nothing
    assert list(watch.request().user_ids) == ["u1"]


def test_a_live_watch_takes_the_start_cursor_from_the_subscribed_message() -> None:
    watch = _watch()
    watch.connected([])  # no header (e.g. a proxy dropped it): the message still says
    assert watch.accept(tpb.WatchAwardsResponse(cursor=41, subscribed=True)) is None
    assert watch.request().after_cursor == 41
    assert watch.accept(_entry(41)) is None
    award = watch.accept(_entry(42))
    assert award is not None and award.cursor == 42


def test_a_resumed_watch_keeps_its_cursor_when_subscribed() -> None:
    watch = _watch(after=10)
    assert watch.accept(tpb.WatchAwardsResponse(cursor=10, subscribed=True)) is None
    assert watch.request().after_cursor == 10


def test_a_watch_skips_entries_it_already_delivered() -> None:
    watch = _watch(after=10)
    watch.connected([("accolade-start-cursor", "10")])
    assert watch.accept(_entry(9)) is None
    assert watch.accept(_entry(10)) is None
    award = watch.accept(_entry(11))
    assert award is not None and award.cursor == 11
    assert watch.accept(_entry(11)) is None
    assert watch.request().after_cursor == 11


def test_a_watch_reconnects_on_transient_errors_only_and_within_its_limit() -> None:
    watch = _watch(max_reconnects=2)
    assert watch.reconnect_delay(grpc.StatusCode.INVALID_ARGUMENT) is None
    assert watch.reconnect_delay(grpc.StatusCode.UNAVAILABLE) is not None
    assert watch.reconnect_delay(None) is not None  # the server ended the stream
    assert watch.reconnect_delay(grpc.StatusCode.UNAVAILABLE) is None


def test_cli_properties_are_json_when_they_parse_and_text_otherwise() -> None:
    assert prop("amount=42") == ("amount", 42)
    assert prop("vip=true") == ("vip", True)
    assert prop('tags=["a"]') == ("tags", ["a"])
    assert prop("city=Paris") == ("city", "Paris")
    assert prop("note=a=b") == ("note", "a=b")


@pytest.mark.parametrize(
    ("details", "names"),
    [
        ("SERVER: Received message larger than max (4123 vs. 2048)", "max_message_bytes"),
        ("CLIENT: Sent message larger than max (4123 vs. 1000)", "grpc.max_send_message_length"),
        ("CLIENT: Received message larger than max (9 vs. 8)", "grpc.max_receive_message_length"),
        ("rate limit of 5 calls/s for API key k exceeded; retry in 0.20 s", None),
    ],
)
def test_grpc_size_limits_name_their_option_and_are_not_retried(
    details: str, names: str | None
) -> None:
    message = _errors.size_limit_message(grpc.StatusCode.RESOURCE_EXHAUSTED, details)
    if names is None:
        assert message is None
    else:
        assert message is not None and names in message and details in message
    assert _errors.size_limit_message(grpc.StatusCode.INTERNAL, details) is None
