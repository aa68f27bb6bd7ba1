"""Webhook and email delivery: signed, retried, durable across restarts; admin alerts."""

from __future__ import annotations

import asyncio
import email
import json
import mailbox
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from accolade.v1 import admin_pb2 as apb
from accolade.v1 import tracker_pb2 as tpb
from accolade.webhooks import DELIVERY_HEADER, SIGNATURE_HEADER, SignatureError, verify
from accolade_server.store import delivery
from tests.conftest import Database, Running, start_server, stop_server
from tests.helpers import achievement
from tests.processes import free_port

SECRET = "whsec-test"


class Receiver:
    """A real HTTP server in a thread that records webhook POSTs (or refuses them)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(free_port())
    try:
        yield r
    finally:
        r.stop()


async def eventually(predicate: Any, seconds: float = 15.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def sink_attempts(db: Database) -> int:
    async with db.engine.connect() as conn:
        from accolade_server.store.repository import Repository

        return max((s.attempts for s in await delivery.states(Repository(conn))), default=0)


async def earn_first(server: Running, user: str = "u1", event_id: str | None = None) -> None:
    await server.admin.ApplyAchievements(
        apb.ApplyAchievementsRequest(
            achievements=[
                achievement("first", title="First steps", rule={"event_types": ["e"]}, points=5)
            ]
        )
    )
    await server.tracker.TrackEvent(
        tpb.TrackEventRequest(event_id=event_id or f"ev-{user}", user_id=user, type="e")
    )


def webhook_settings(url: str) -> dict[str, Any]:
    return {
        "notification_type": "webhook",
        "webhook_urls": [url],
        "webhook_secret": SECRET,
        "delivery_initial_backoff_seconds": 0.05,
        "delivery_max_backoff_seconds": 0.2,
    }


async def test_webhook_posts_each_award_signed_with_a_dedup_id(
    db: Database, receiver: Receiver
) -> None:
    receiver.start()
    running = await start_server(db, **webhook_settings(receiver.url))
    try:
        await earn_first(running)
        await eventually(lambda: len(receiver.requests) == 1)
    finally:
        await stop_server(running)
    headers, body = receiver.requests[0]
    verify(SECRET, headers[SIGNATURE_HEADER], body)  # raises if wrong
    with pytest.raises(SignatureError):
        verify("other-secret", headers[SIGNATURE_HEADER], body)
    with pytest.raises(SignatureError):
        verify(SECRET, headers[SIGNATURE_HEADER], body + b" ")
    payload = json.loads(body)
    assert headers[DELIVERY_HEADER] == payload["id"] == str(payload["award"]["cursor"])
    assert payload["type"] == "award.granted"
    assert (payload["award"]["user_id"], payload["achievement"]["title"]) == ("u1", "First steps")


async def test_webhook_receiver_down_then_up_gets_the_award_once_recovered(
    db: Database, receiver: Receiver
) -> None:
    running = await start_server(db, **webhook_settings(receiver.url))
    try:
        await earn_first(running)
        for_attempts = asyncio.ensure_future(_attempts_at_least(db, 2))
        await for_attempts  # it failed and retried while the receiver was down
        receiver.start()
        await eventually(lambda: len(receiver.requests) >= 1)
        await asyncio.sleep(0.3)  # a few more retry periods: nothing else arrives
    finally:
        await stop_server(running)
    assert [p["award"]["user_id"] for p in receiver.payloads()] == ["u1"]


async def _attempts_at_least(db: Database, n: int) -> None:
    for _ in range(750):
        if await sink_attempts(db) >= n:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"fewer than {n} delivery attempts")


async def test_webhook_delivery_survives_a_restart_mid_retry(
    db: Database, receiver: Receiver
) -> None:
    running = await start_server(db, **webhook_settings(receiver.url))
    try:
        await earn_first(running, "u1")
        await earn_first(running, "u2")
        await _attempts_at_least(db, 1)
    finally:
        await stop_server(running)
    receiver.start()
    restarted = await start_server(db, **webhook_settings(receiver.url))
    try:
        await eventually(lambda: len(receiver.requests) >= 2)
    finally:
        await stop_server(restarted)
    assert sorted(p["award"]["user_id"] for p in receiver.payloads()) == ["u1", "u2"]


async def test_receiver_errors_are_retried_until_accepted(db: Database, receiver: Receiver) -> None:
    receiver.status = 503
    receiver.start()
    running = await start_server(db, **webhook_settings(receiver.url))
    try:
        await earn_first(running)
        await eventually(lambda: len(receiver.requests) >= 3)
        receiver.status = 204
        accepted = len(receiver.requests) + 1
        await eventually(lambda: len(receiver.requests) >= accepted)
        await asyncio.sleep(0.3)
        assert len(receiver.requests) == accepted  # accepted once: no more attempts
    finally:
        await stop_server(running)
    assert {p["id"] for p in receiver.payloads()} == {receiver.payloads()[0]["id"]}


async def test_admin_alerts_receive_manual_grants_and_revocations_only(
    db: Database, receiver: Receiver
) -> None:
    receiver.start()
    running = await start_server(
        db,
        admin_webhook_urls=[receiver.url],
        webhook_secret=SECRET,
        delivery_initial_backoff_seconds=0.05,
    )
    try:
        await earn_first(running, "rule-user")
        await running.admin.GrantAward(
            apb.GrantAwardRequest(
                user_id="vip", achievement_id="first", reason="support ticket", actor="alice"
            )
        )
        await running.admin.RevokeAward(
            apb.RevokeAwardRequest(
                user_id="vip", achievement_id="first", reason="mistake", actor="bob"
            )
        )
        await eventually(lambda: len(receiver.requests) >= 2)
        await asyncio.sleep(0.2)
    finally:
        await stop_server(running)
    payloads = receiver.payloads()
    assert [(p["type"], p["award"]["actor"]) for p in payloads] == [
        ("award.granted", "alice"),
        ("award.revoked", "bob"),
    ]


@pytest.fixture
async def smtp_server(tmp_path: Path) -> AsyncIterator[tuple[int, Path]]:
    """A real SMTP server process (aiosmtpd) storing messages in a Maildir."""
    port = free_port()
    maildir = tmp_path / "maildir"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aiosmtpd",
        "-n",
        "-l",
        f"127.0.0.1:{port}",
        "-c",
        "aiosmtpd.handlers.Mailbox",
        str(maildir),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        for _ in range(500):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.02)
        yield port, maildir
    finally:
        process.terminate()
        await process.wait()


async def test_email_sink_sends_a_templated_message_per_award(
    db: Database, smtp_server: tuple[int, Path]
) -> None:
    port, maildir = smtp_server
    running = await start_server(
        db,
        notification_type="email",
        smtp_host="127.0.0.1",
        smtp_port=port,
        email_sender="badges@example.test",
        email_to="{user_id}@example.test",
        email_templates={
            "first": {"subject": "Well done {user_id}: {title}", "body": "You got {points} points."}
        },
        delivery_initial_backoff_seconds=0.05,
    )
    try:
        await earn_first(running, "ada")

        def messages() -> list[email.message.Message]:
            return list(mailbox.Maildir(maildir, create=False)) if maildir.exists() else []

        await eventually(lambda: len(messages()) == 1)
    finally:
        await stop_server(running)
    [msg] = messages()
    assert (msg["To"], msg["From"], msg["Subject"]) == (
        "ada@example.test",
        "badges@example.test",
        "Well done ada: First steps",
    )
    assert "You got 5 points." in msg.get_payload()


def test_a_template_naming_an_unknown_field_is_refused_at_start_up() -> None:
    from pydantic import ValidationError

    from accolade_server.config import Settings

    with pytest.raises(ValidationError, match="subject template"):
        Settings(email_templates={"x": {"subject": "{nope}", "body": ""}})


async def test_webhook_receives_an_erasure_without_personal_data(
    db: Database, receiver: Receiver
) -> None:
    receiver.start()
    running = await start_server(db, **webhook_settings(receiver.url))
    try:
        await earn_first(running)
        # Delivered first: erasing removes the user's entries, undelivered ones included.
        await eventually(lambda: len(receiver.requests) == 1)
        await running.admin.DeleteUserData(apb.DeleteUserDataRequest(user_id="u1"))
        await eventually(lambda: len(receiver.requests) == 2)
    finally:
        await stop_server(running)
    granted, erased = receiver.payloads()
    assert granted["type"] == "award.granted"
    assert erased["type"] == "user.erased" and erased["achievement"] is None
    assert erased["award"]["user_id"] == "u1" and erased["award"]["kind"] == "erasure"
    assert set(erased["award"]) == {"cursor", "user_id", "kind", "award_time"}


async def test_stopping_right_after_work_leaves_the_database_unlocked(
    sqlite_db: Database, receiver: Receiver
) -> None:
    """Shutdown lets background loops (delivery, award tail, key refresh) finish the step
    they are in: one cancelled inside a transaction left SQLite write-locked for every other
    process until the connection was collected."""
    await sqlite_db.truncate()
    receiver.start()
    for round_ in range(3):
        running = await start_server(sqlite_db, **webhook_settings(receiver.url))
        await earn_first(running, user=f"u{round_}")  # wakes the delivery worker and the tail
        await stop_server(running)
        path = sqlite_db.url.split("///", 1)[1]
        # Another process's write must not wait: the busy timeout here is zero.
        probe = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], timeout=0); "
            "c.execute('BEGIN IMMEDIATE'); c.rollback()",
            path,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await probe.communicate()
        assert probe.returncode == 0, err.decode()
