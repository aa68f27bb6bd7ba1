"""Delivery sinks: a signed webhook POST, or an email over SMTP."""

from __future__ import annotations

import asyncio
import json
import smtplib
import ssl
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict
from email.message import EmailMessage
from typing import Any, Protocol, runtime_checkable

import httpx
import structlog

from accolade.webhooks import DELIVERY_HEADER, SIGNATURE_HEADER, sign
from accolade_server.config import DEFAULT_EMAIL, DEFAULT_LEVEL_EMAIL, Settings
from accolade_server.domain.model import (
    Achievement,
    AwardKind,
    AwardRecord,
    AwardSource,
    Presentation,
)
from accolade_server.domain.rewards import expiry, granted
from accolade_server.notify.broker import AwardFilter

log = structlog.get_logger("accolade.sinks")


class DeliveryFailed(Exception):
    """A delivery attempt failed; it will be retried with backoff."""


class Sink(Protocol):
    name: str
    filter: AwardFilter

    async def deliver(self, record: AwardRecord, achievement: Achievement | None) -> None: ...

    async def close(self) -> None: ...


@runtime_checkable
class BatchSink(Sink, Protocol):
    """A sink that takes up to `max_batch` consecutive entries of one user at once."""

    max_batch: int

    async def deliver_many(
        self, records: Sequence[AwardRecord], achievements: Mapping[str, Achievement]
    ) -> None: ...


def batches(sink: Sink, records: Sequence[AwardRecord]) -> Iterator[list[AwardRecord]]:
    """`records` in order, in the groups the sink takes: one entry each, or for a
    `BatchSink` consecutive entries of one user, at most `max_batch` of them."""
    size = sink.max_batch if isinstance(sink, BatchSink) else 1
    group: list[AwardRecord] = []
    for record in records:
        if group and (len(group) == size or record.user_id != group[0].user_id):
            yield group
            group = []
        group.append(record)
    if group:
        yield group


#: The webhook `type` of each kind (erasures are `user.erased`).
_TYPES = {
    AwardKind.AWARD: "award.granted",
    AwardKind.REVOCATION: "award.revoked",
    AwardKind.LEVEL: "level.reached",
    AwardKind.REDEMPTION: "points.redeemed",
    AwardKind.REFUND: "points.refunded",
}


def _rewards(record: AwardRecord, achievement: Achievement | None) -> list[dict[str, Any]]:
    """What an award grants (with expiry) or a revocation removes, as the `Award.rewards`
    of the gRPC API: from the definition as it is when sent."""
    if record.kind not in (AwardKind.AWARD, AwardKind.REVOCATION):
        return []
    out = []
    for w in granted(achievement, record.tier):
        ends = expiry(w, record.award_time) if record.kind is AwardKind.AWARD else None
        out.append({"name": w.name, "expire_time": ends.isoformat() if ends else None})
    return out


def award_payload(record: AwardRecord, achievement: Achievement | None) -> dict[str, Any]:
    """The JSON document a webhook receives. An erasure (`user.erased`) carries the cursor,
    the user id and the time only; the receiver should erase what it keeps of the user."""
    if record.kind is AwardKind.ERASURE:
        return {
            "id": str(record.cursor),
            "type": "user.erased",
            "award": {
                "cursor": record.cursor,
                "user_id": record.user_id,
                "kind": record.kind.value,
                "award_time": record.award_time.isoformat(),
            },
            "achievement": None,
        }
    return {
        "id": str(record.cursor),
        "type": _TYPES.get(record.kind, "award.granted"),
        "award": {
            "cursor": record.cursor,
            "user_id": record.user_id,
            "achievement_id": record.achievement_id,
            "tier": record.tier,
            "points": record.points,
            "source": record.source.value,
            "reason": record.reason,
            "actor": record.actor,
            "event_id": record.event_id,
            "award_time": record.award_time.isoformat(),
            "revoked": record.revoked,
            "kind": record.kind.value,
            "redemption_id": record.redemption_id,
            "reward_id": record.reward_id,
            "rewards": _rewards(record, achievement),
            # A repeating achievement's period ("2026-W48") and its start; "" and null
            # otherwise.
            "period": record.period,
            "period_start": record.period_start.isoformat() if record.period_start else None,
        },
        # The same presentation as the `Award` messages of the gRPC API (Presentation.of).
        "achievement": None
        if achievement is None
        else {"id": achievement.id, **asdict(Presentation.of(achievement))},
    }


class WebhookSink:
    def __init__(
        self, url: str, secret: str, *, timeout: float, name: str, flt: AwardFilter
    ) -> None:
        self.url = url
        self.secret = secret
        self.name = name
        self.filter = flt
        self.client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    async def deliver(self, record: AwardRecord, achievement: Achievement | None) -> None:
        await self.post(award_payload(record, achievement), str(record.cursor))

    async def post(self, payload: dict[str, Any], delivery: str) -> None:
        """POST `payload` as signed JSON; `delivery` is the Accolade-Delivery header."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "accolade-webhook/1",
            SIGNATURE_HEADER: sign(self.secret, body),
            DELIVERY_HEADER: delivery,
        }
        try:
            response = await self.client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from exc
        if not 200 <= response.status_code < 300:
            raise DeliveryFailed(f"HTTP {response.status_code} from {self.url}")

    async def close(self) -> None:
        await self.client.aclose()


class EmailSink:
    """One email per award and level reached to `email_to` (revocations, erasures,
    redemptions and refunds are not emailed). A level's template is `email_templates.level`
    (its name is `{tier}` and `{title}`)."""

    name = "email"
    filter = AwardFilter()

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def message(self, record: AwardRecord, achievement: Achievement | None) -> EmailMessage | None:
        to = self.settings.email_to.format(user_id=record.user_id)
        if "@" not in to:
            log.warning("no email address for user", user_id=record.user_id, email_to=to)
            return None
        templates = self.settings.email_templates
        if record.kind is AwardKind.LEVEL:
            template = templates.get("level", DEFAULT_LEVEL_EMAIL)
        else:
            template = templates.get(record.achievement_id) or templates.get(
                "default", DEFAULT_EMAIL
            )
        fields = {
            "user_id": record.user_id,
            "achievement_id": record.achievement_id,
            "title": achievement.title if achievement else record.achievement_id or record.tier,
            "description": achievement.description if achievement else "",
            "tier": record.tier,
            "tier_suffix": f" ({record.tier})" if record.tier else "",
            "points": record.points,
            "period": record.period,
        }
        msg = EmailMessage()
        msg["Subject"] = template.subject.format(**fields)
        msg["From"] = self.settings.email_sender
        msg["To"] = to
        msg["X-Accolade-Award"] = str(record.cursor)
        msg.set_content(template.body.format(**fields))
        return msg

    async def deliver(self, record: AwardRecord, achievement: Achievement | None) -> None:
        if record.kind not in (AwardKind.AWARD, AwardKind.LEVEL):  # no mail for the others
            return
        msg = self.message(record, achievement)
        if msg is not None:
            try:
                await asyncio.to_thread(self._send, msg)
            except (OSError, smtplib.SMTPException) as exc:
                raise DeliveryFailed(f"SMTP: {type(exc).__name__}: {exc}") from exc

    def _send(self, msg: EmailMessage) -> None:
        s = self.settings
        timeout = 30
        smtp: smtplib.SMTP
        if s.smtp_tls == "ssl":
            smtp = smtplib.SMTP_SSL(
                s.smtp_host, s.smtp_port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=timeout)
        with smtp:
            if s.smtp_tls == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if s.smtp_username:
                password = s.smtp_password.get_secret_value() if s.smtp_password else ""
                smtp.login(s.smtp_username, password)
            smtp.send_message(msg)

    async def close(self) -> None:
        return None


def build_sinks(settings: Settings) -> list[Sink]:
    """The sinks the configuration asks for."""
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
    sinks: list[Sink] = []
    if settings.notification_type == "webhook":
        sinks += [
            WebhookSink(
                url,
                secret,
                timeout=settings.webhook_timeout_seconds,
                name=f"webhook:{url}",
                flt=AwardFilter(),
            )
            for url in settings.webhook_urls
        ]
    elif settings.notification_type == "email":
        sinks.append(EmailSink(settings))
    sinks += admin_sinks(settings, "admin-webhook")
    return sinks


def admin_sinks(settings: Settings, name: str) -> list[WebhookSink]:
    """A webhook sink per `admin_webhook_urls` entry (manual awards only, when delivering
    the award log; see also notify/alerts.py)."""
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
    return [
        WebhookSink(
            url,
            secret,
            timeout=settings.webhook_timeout_seconds,
            name=f"{name}:{url}",
            flt=AwardFilter(source=AwardSource.MANUAL),
        )
        for url in settings.admin_webhook_urls
    ]
