"""The analytics delivery channel: award-log entries as Google Analytics 4 events.

Entries go out through the Measurement Protocol (`POST {endpoint}/mp/collect?measurement_id=…
&api_secret=…`) with the same durable, leased, retried cursor as webhooks
(notify/delivery.py): at least once, in order. One request carries the consecutive entries
of one user, at most `MAX_EVENTS` of them (GA4's limit per request).

What GA4 documents and this module keeps to: event names of at most 40 letters, digits and
underscores starting with a letter, not starting with a reserved prefix; parameter names of
at most 40 characters; parameter values of at most 100 characters; at most 25 parameters.
GA4 answers 2xx even to a payload it drops, so the format is checked here and in the tests,
not by the receiver.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from accolade_server.config import Settings
from accolade_server.domain.model import SPENDING, Achievement, AwardKind, AwardRecord
from accolade_server.notify.broker import AwardFilter
from accolade_server.notify.sinks import DeliveryFailed

#: GA4 Measurement Protocol limits (per request, per event, per name and value).
MAX_EVENTS = 25
MAX_PARAMS = 25
MAX_NAME = 40
MAX_VALUE = 100
RESERVED_PREFIXES = ("google_", "ga_", "firebase_")

#: The GA4 event sent for each kind of award-log entry (`AwardKind` values). A kind that is
#: not listed goes out as `accolade_<kind>`; None sends nothing for that kind.
#: Recommended events carry GA4's recommended parameters (see `ga4_event`).
EVENT_NAMES: dict[str, str | None] = {
    "award": "unlock_achievement",  # GA4's recommended event: achievement_id
    "revocation": "accolade_revocation",
    "level": "level_up",  # GA4's recommended event: level (a number), level_name
    # GA4's recommended events: value, virtual_currency_name, item_name (the reward).
    "redemption": "spend_virtual_currency",
    # The points come back as virtual currency. (GA4's `refund` is for purchases: it needs
    # an ISO 4217 currency and the purchase's transaction_id, neither of which points have.)
    "refund": "earn_virtual_currency",
    # GA4 deletes a user's data through its User Deletion API, not through events.
    "erasure": None,
}

#: The virtual currency of redemptions and refunds (`virtual_currency_name`).
CURRENCY = "points"

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_SECRET_QUERY = re.compile(r"(api_secret=)[^&\s\"']+")


def event_name(kind: str) -> str | None:
    """The GA4 event name for an entry kind (None: not sent)."""
    if kind in EVENT_NAMES:
        return EVENT_NAMES[kind]
    name = re.sub(r"[^A-Za-z0-9_]", "_", f"accolade_{kind}")[:MAX_NAME]
    return name


def valid_event_name(name: str) -> bool:
    return (
        len(name) <= MAX_NAME
        and _NAME.fullmatch(name) is not None
        and not name.lower().startswith(RESERVED_PREFIXES)
    )


def client_id(measurement_id: str, user_id: str) -> str:
    """A stable pseudonymous GA4 client_id for an Accolade user: the same user always maps
    to the same id for one measurement id, and the id does not reveal the user id."""
    digest = hashlib.sha256(f"{measurement_id}\x00{user_id}".encode()).hexdigest()
    return f"{int(digest[:8], 16)}.{int(digest[8:16], 16)}"


def _value(value: str | int) -> str | int:
    return value[:MAX_VALUE] if isinstance(value, str) else value


def ga4_event(
    record: AwardRecord,
    achievement: Achievement | None,
    levels: Mapping[str, int] | None = None,
) -> dict[str, Any] | None:
    """One Measurement Protocol event for an entry, or None when its kind is not sent.

    Awards and revocations name the achievement; levels reached carry `level` (the level's
    number, 1 for the first of `point_levels`, from `levels`) and `level_name`; redemptions
    and refunds carry `value` (the points, positive), `virtual_currency_name` ("points"),
    `item_name` (the reward, when named) and `redemption_id`."""
    name = event_name(record.kind.value)
    if name is None:
        return None
    params: dict[str, str | int] = {}
    if record.kind is AwardKind.LEVEL:
        if levels and record.tier in levels:
            params["level"] = levels[record.tier]
        params["level_name"] = record.tier
    elif record.kind in SPENDING:
        params["value"] = abs(record.points)
        params["virtual_currency_name"] = CURRENCY
        if record.reward_id:
            params["item_name"] = record.reward_id
        params["redemption_id"] = record.redemption_id
    else:
        params["achievement_id"] = record.achievement_id
        params["achievement_title"] = achievement.title if achievement else record.achievement_id
        params["tier"] = record.tier
        params["points"] = record.points
    params["source"] = record.source.value
    params["award_cursor"] = record.cursor
    if record.reason:
        params["reason"] = record.reason
    if record.event_id and record.kind not in SPENDING:
        params["event_id"] = record.event_id
    if record.period:  # a repeating achievement's period, e.g. "2026-W48"
        params["period"] = record.period
    return {
        "name": name,
        "params": {k: _value(v) for k, v in params.items()},
        "timestamp_micros": int(record.award_time.timestamp() * 1_000_000),
    }


def ga4_payload(
    measurement_id: str,
    records: Sequence[AwardRecord],
    achievements: Mapping[str, Achievement],
    *,
    send_user_id: bool,
    levels: Mapping[str, int] | None = None,
) -> dict[str, Any] | None:
    """The request body for entries of one user (None when none of them is sent)."""
    events = [
        e
        for r in records
        if (e := ga4_event(r, achievements.get(r.achievement_id), levels)) is not None
    ]
    if not events:
        return None
    if len(events) > MAX_EVENTS:
        raise ValueError(f"at most {MAX_EVENTS} events per request")
    user = records[0].user_id
    if any(r.user_id != user for r in records):
        raise ValueError("one request carries the entries of one user")
    body: dict[str, Any] = {"client_id": client_id(measurement_id, user)}
    if send_user_id:
        body["user_id"] = user
    body["events"] = events
    return body


class _RedactSecrets(logging.Filter):
    """httpx logs each request's URL at INFO; the Measurement Protocol puts the API secret
    in the query string. This filter blanks `api_secret=` values in those records."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "api_secret=" in message:
            record.msg = _SECRET_QUERY.sub(r"\1<redacted>", message)
            record.args = ()
        return True


_REDACT = _RedactSecrets()


class Ga4Sink:
    """Deliver award-log entries to a GA4 property (see the module docstring)."""

    filter = AwardFilter()
    max_batch = MAX_EVENTS

    def __init__(
        self,
        *,
        measurement_id: str,
        api_secret: str,
        endpoint: str,
        send_user_id: bool,
        timeout: float,
        levels: Mapping[str, int] | None = None,
    ) -> None:
        self.measurement_id = measurement_id
        self.name = f"ga4:{measurement_id}"
        self._secret = api_secret
        self.endpoint = endpoint.rstrip("/")
        self.send_user_id = send_user_id
        self.levels = dict(levels or {})
        self.client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        for logger in ("httpx", "httpcore"):
            if _REDACT not in logging.getLogger(logger).filters:
                logging.getLogger(logger).addFilter(_REDACT)

    def _redact(self, text: str) -> str:
        return _SECRET_QUERY.sub(r"\1<redacted>", text).replace(self._secret, "<redacted>")

    async def deliver(self, record: AwardRecord, achievement: Achievement | None) -> None:
        achievements = {achievement.id: achievement} if achievement else {}
        await self.deliver_many([record], achievements)

    async def deliver_many(
        self, records: Sequence[AwardRecord], achievements: Mapping[str, Achievement]
    ) -> None:
        """POST the entries of one user in one request; DeliveryFailed on any failure."""
        payload = ga4_payload(
            self.measurement_id,
            records,
            achievements,
            send_user_id=self.send_user_id,
            levels=self.levels,
        )
        if payload is None:
            return
        body = json.dumps(payload, separators=(",", ":")).encode()
        try:
            response = await self.client.post(
                f"{self.endpoint}/mp/collect",
                params={"measurement_id": self.measurement_id, "api_secret": self._secret},
                content=body,
                headers={"Content-Type": "application/json", "User-Agent": "accolade-ga4/1"},
            )
        except httpx.HTTPError as exc:
            raise DeliveryFailed(self._redact(f"{type(exc).__name__}: {exc}")) from None
        if not 200 <= response.status_code < 300:
            raise DeliveryFailed(f"HTTP {response.status_code} from {self.endpoint}/mp/collect")

    async def close(self) -> None:
        await self.client.aclose()


def ga4_sinks(settings: Settings) -> list[Ga4Sink]:
    """The GA4 sink when `ga4_measurement_id` is set (config validation requires the secret)."""
    if not settings.ga4_measurement_id or settings.ga4_api_secret is None:
        return []
    return [
        Ga4Sink(
            measurement_id=settings.ga4_measurement_id,
            api_secret=settings.ga4_api_secret.get_secret_value(),
            endpoint=settings.ga4_endpoint,
            send_user_id=settings.ga4_send_user_id,
            timeout=settings.webhook_timeout_seconds,
            levels={lv.name: n for n, lv in enumerate(settings.point_levels, start=1)},
        )
    ]
