"""The BadgeTracker service."""

from __future__ import annotations

from accolade.v1 import tracker_pb2_grpc


class BadgeTrackerServicer(tracker_pb2_grpc.BadgeTrackerServicer):
    """Every method answers UNIMPLEMENTED until the rule engine lands (generated base class)."""
