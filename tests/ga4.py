"""A local stand-in for GA4's Measurement Protocol endpoint that checks each request against
the format GA4 documents ("Send Measurement Protocol events", its limitations section)."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

MEASUREMENT_ID = "G-TEST123"
API_SECRET = "mp-secret-Zq8v1X"

#: Top-level fields of the JSON body GA4 documents.
BODY_FIELDS = {
    "client_id",
    "user_id",
    "timestamp_micros",
    "user_properties",
    "consent",
    "non_personalized_ads",
    "user_data",
    "user_location",
    "ip_override",
    "device",
    "validation_behavior",
    "events",
}
#: Event names GA4 reserves (they may not be sent); a sample of the documented list.
RESERVED_EVENTS = {
    "ad_activeview",
    "ad_click",
    "ad_exposure",
    "ad_query",
    "ad_reward",
    "adunit_exposure",
    "app_background",
    "app_clear_data",
    "app_exception",
    "app_remove",
    "app_store_refund",
    "app_update",
    "app_upgrade",
    "dynamic_link_app_open",
    "error",
    "first_open",
    "first_visit",
    "in_app_purchase",
    "notification_dismiss",
    "notification_foreground",
    "notification_open",
    "notification_receive",
    "os_update",
    "session_start",
    "screen_view",
    "user_engagement",
}
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")
#: GA4's recommended events (its "Recommended events" reference): parameter → (type,
#: required). A recommended event must carry the required ones, each of the documented type.
RECOMMENDED: dict[str, dict[str, tuple[type | tuple[type, ...], bool]]] = {
    "unlock_achievement": {"achievement_id": (str, True)},
    "level_up": {"level": ((int, float), False), "character": (str, False)},
    "earn_virtual_currency": {
        "virtual_currency_name": (str, False),
        "value": ((int, float), False),
    },
    "spend_virtual_currency": {
        "value": ((int, float), True),
        "virtual_currency_name": (str, True),
        "item_name": (str, False),
    },
    "refund": {
        "currency": (str, True),
        "transaction_id": (str, True),
        "value": ((int, float), True),
    },
}


def format_problems(path: str, headers: dict[str, str], body: bytes) -> list[str]:
    """What in one request breaks GA4's documented Measurement Protocol format."""
    problems: list[str] = []
    url = urlsplit(path)
    query = parse_qs(url.query)
    if url.path != "/mp/collect":
        problems.append(f"path {url.path}")
    if query.get("measurement_id") != [MEASUREMENT_ID] or query.get("api_secret") != [API_SECRET]:
        problems.append(f"query {sorted(query)}")
    if not headers.get("Content-Type", "").startswith("application/json"):
        problems.append("content type")
    if len(body) >= 130_000:
        problems.append("post body of 130 kB or more")
    try:
        payload = json.loads(body)
    except ValueError:
        return [*problems, "body is not JSON"]
    if not isinstance(payload, dict):
        return [*problems, "body is not an object"]
    problems += [f"unknown field {k}" for k in payload if k not in BODY_FIELDS]
    if not isinstance(payload.get("client_id"), str) or not payload["client_id"]:
        problems.append("client_id missing")
    if "user_id" in payload and not isinstance(payload["user_id"], str):
        problems.append("user_id not a string")
    events = payload.get("events")
    if not isinstance(events, list) or not 1 <= len(events) <= 25:
        return [*problems, "events: 1 to 25 required"]
    for event in events:
        name = event.get("name", "")
        if not NAME.fullmatch(name) or name.startswith(("google_", "ga_", "firebase_")):
            problems.append(f"event name {name!r}")
        if name in RESERVED_EVENTS:
            problems.append(f"reserved event name {name!r}")
        params = event.get("params", {})
        if not isinstance(params, dict) or len(params) > 25:
            problems.append(f"{name}: params")
            continue
        for key, value in params.items():
            if not NAME.fullmatch(key) or key.startswith(("google_", "ga_", "firebase_")):
                problems.append(f"{name}: param name {key!r}")
            if isinstance(value, str) and len(value) > 100:
                problems.append(f"{name}: {key} longer than 100 characters")
            if not isinstance(value, str | int | float):
                problems.append(f"{name}: {key} is not a string or a number")
        for key, (kind, required) in RECOMMENDED.get(name, {}).items():
            if key not in params:
                if required:
                    problems.append(f"{name}: recommended parameter {key} missing")
            elif not isinstance(params[key], kind) or isinstance(params[key], bool):
                problems.append(f"{name}: {key} of the wrong type")
            elif isinstance(params[key], str) and not params[key]:
                problems.append(f"{name}: {key} is empty")
        if "timestamp_micros" in event and not isinstance(event["timestamp_micros"], int):
            problems.append(f"{name}: timestamp_micros")
    return problems


class Collector:
    """A real HTTP server (port 0, in a thread) answering each POST with the next status of
    `statuses` (the last one repeats) and recording what it was sent."""

    def __init__(self) -> None:
        self.statuses = [204]
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                collector.requests.append((self.path, dict(self.headers), body))
                status = (
                    collector.statuses.pop(0)
                    if len(collector.statuses) > 1
                    else collector.statuses[0]
                )
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def settings(self, **overrides: Any) -> dict[str, Any]:
        return {
            "ga4_measurement_id": MEASUREMENT_ID,
            "ga4_api_secret": API_SECRET,
            "ga4_endpoint": self.endpoint,
            "delivery_initial_backoff_seconds": 0.05,
            "delivery_max_backoff_seconds": 0.2,
            **overrides,
        }

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, _, body in self.requests]

    def events(self) -> list[dict[str, Any]]:
        return [e for p in self.payloads() for e in p["events"]]

    def problems(self) -> list[str]:
        return [p for path, h, body in self.requests for p in format_problems(path, h, body)]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
