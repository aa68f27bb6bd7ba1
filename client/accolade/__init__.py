"""Accolade client: talk to an Accolade badge & achievement server.

    from accolade import Client

    with Client() as client:  # 127.0.0.1:50051, or $ACCOLADE_TARGET
        result = client.track_event("purchase_completed", user_id="user_123", amount=42)
        for award in result.awards:
            print("earned", award.achievement_id)

`AsyncClient` offers the same calls for asyncio. Results are the generated protobuf messages
(`accolade.v1.*_pb2`, re-exported here by name); errors are `AccoladeError` subclasses.
"""

__version__ = "0.1.0"

from accolade._aio import AsyncClient
from accolade._client import Client
from accolade._common import TLS, new_event_id
from accolade._enums import parse_enum
from accolade._errors import (
    AbortedError,
    AccoladeError,
    AlreadyExistsError,
    DeadlineExceededError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    RPCError,
    UnauthenticatedError,
    UnavailableError,
)
from accolade._retry import RetryPolicy
from accolade._state import event_error
from accolade._streams import AsyncAwardStream, AwardStream
from accolade.definitions import DefinitionError
from accolade.v1.admin_pb2 import (
    AchievementChange,
    ApplyAchievementsResponse,
    EventType,
    GrantAwardResponse,
    ProgressPolicy,
    PropertyType,
    RevokeAwardResponse,
)
from accolade.v1.tracker_pb2 import (
    GetProgressResponse,
    TrackEventRequest,
    TrackEventResponse,
    TrackEventResult,
)
from accolade.v1.types_pb2 import (
    Achievement,
    Aggregate,
    Award,
    AwardSource,
    Progress,
    ProgressStatus,
    Rule,
    Tier,
)

__all__ = [
    "TLS",
    "AbortedError",
    "AccoladeError",
    "Achievement",
    "AchievementChange",
    "Aggregate",
    "AlreadyExistsError",
    "ApplyAchievementsResponse",
    "AsyncAwardStream",
    "AsyncClient",
    "Award",
    "AwardSource",
    "AwardStream",
    "Client",
    "DeadlineExceededError",
    "DefinitionError",
    "EventType",
    "FailedPreconditionError",
    "GetProgressResponse",
    "GrantAwardResponse",
    "InternalError",
    "InvalidArgumentError",
    "NotFoundError",
    "PermissionDeniedError",
    "Progress",
    "ProgressPolicy",
    "ProgressStatus",
    "PropertyType",
    "RPCError",
    "ResourceExhaustedError",
    "RetryPolicy",
    "RevokeAwardResponse",
    "Rule",
    "Tier",
    "TrackEventRequest",
    "TrackEventResponse",
    "TrackEventResult",
    "UnauthenticatedError",
    "UnavailableError",
    "__version__",
    "event_error",
    "new_event_id",
    "parse_enum",
]
