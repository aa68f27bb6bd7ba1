"""The schema. Migrations in `migrations/versions` must produce exactly this (a test checks)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData()

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")
# BIGINT autoincrement is INTEGER on SQLite (where only INTEGER PRIMARY KEY is the rowid).
BigIntId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

achievements = sa.Table(
    "achievements",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("category", sa.String(64), nullable=False, server_default=""),
    sa.Column("enabled", sa.Boolean, nullable=False),
    # The whole definition (domain fields) as JSON; category/enabled are copied out for filters.
    sa.Column("definition", JSONType, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
    # Where the definition was last applied from (ApplyAchievements `source`, e.g. a file name).
    sa.Column("source", sa.String(512), nullable=False, server_default=""),
    sa.Index("ix_achievements_category", "category", "id"),
)

# Every received event, once: `event_id` is the idempotency key. `outcome` keeps what the
# first call answered so a retry gets the same answer.
events = sa.Table(
    "events",
    metadata,
    sa.Column("event_id", sa.String(128), primary_key=True),
    sa.Column("user_id", sa.String(128), nullable=False),
    sa.Column("type", sa.String(128), nullable=False),
    sa.Column("properties", JSONType, nullable=False),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("tracked", sa.Boolean, nullable=False),
    sa.Column("outcome", JSONType, nullable=True),
    sa.Index("ix_events_received_at", "received_at"),
)

# The properties events of each type carry: JSON types as bit masks (see domain/shapes.py),
# observed in tracked events (written once per new type/path/kind per process, never per
# event) and declared by administrators.
event_shapes = sa.Table(
    "event_shapes",
    metadata,
    sa.Column("event_type", sa.String(128), primary_key=True),
    sa.Column("path", sa.String(512), primary_key=True),
    sa.Column("observed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("declared", sa.Integer, nullable=False, server_default="0"),
    sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
    sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
)

# Per-user, per-achievement aggregate state. `level` counts the levels decided (awarded by
# the rule, below a granted or revoked tier, or reached while awards were off): never again.
progress = sa.Table(
    "progress",
    metadata,
    sa.Column("user_id", sa.String(128), primary_key=True),
    sa.Column("achievement_id", sa.String(64), primary_key=True),
    sa.Column("value", sa.Float, nullable=False, server_default="0"),
    sa.Column("level", sa.Integer, nullable=False, server_default="0"),
    sa.Column("streak_day", sa.Integer, nullable=True),
    sa.Column("streak_current", sa.Integer, nullable=False, server_default="0"),
    sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
    # STREAK_DAYS: the days counted (domain/days.py `Days.encode`); NULL in rows written
    # before day sets, which read as the run of `streak_current` days ending at `streak_day`.
    sa.Column("streak_window", sa.Text, nullable=True),
    # Repeating achievements: the period counted and the periods completed (domain/periods.py
    # `Counted.encode`); NULL for others.
    sa.Column("period_state", sa.Text, nullable=True),
)

# DISTINCT aggregates: one row per value seen, so concurrent inserts count exactly.
progress_distinct = sa.Table(
    "progress_distinct",
    metadata,
    sa.Column("user_id", sa.String(128), primary_key=True),
    sa.Column("achievement_id", sa.String(64), primary_key=True),
    sa.Column("value_hash", sa.String(64), primary_key=True),
)

# The append-only award log. `cursor` increases in commit order (see repository). `kind` is
# award, revocation or erasure (see domain.model.AwardKind); `revoked` repeats "revocation"
# for servers of earlier versions.
awards = sa.Table(
    "awards",
    metadata,
    sa.Column("cursor", BigIntId, primary_key=True, autoincrement=False),
    sa.Column("user_id", sa.String(128), nullable=False),
    sa.Column("achievement_id", sa.String(64), nullable=False),
    sa.Column("tier", sa.String(64), nullable=False, server_default=""),
    sa.Column("points", sa.BigInteger, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("revoked", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("kind", sa.String(16), nullable=False, server_default="award"),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("actor", sa.String(128), nullable=False, server_default=""),
    sa.Column("event_id", sa.String(128), nullable=True),
    sa.Column("award_time", sa.DateTime(timezone=True), nullable=False),
    # Awards of a repeating achievement: the period's label ("2026-W48") and start.
    sa.Column("period", sa.String(16), nullable=False, server_default=""),
    sa.Column("period_start", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ix_awards_user_cursor", "user_id", "cursor"),
)

# One row holds the last cursor handed out; updating it locks it until commit, which makes
# cursor order equal commit order across transactions and replicas.
award_log_head = sa.Table(
    "award_log_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("last_cursor", sa.BigInteger, nullable=False),
)

# What each user holds now: the unique key makes "award once" an atomic insert. `period` is
# the period of a repeating achievement's award ("" otherwise): a level is held once per period.
holdings = sa.Table(
    "holdings",
    metadata,
    sa.Column("user_id", sa.String(128), primary_key=True),
    sa.Column("achievement_id", sa.String(64), primary_key=True),
    sa.Column("tier", sa.String(64), primary_key=True),
    sa.Column("period", sa.String(16), primary_key=True, server_default=""),
    sa.Column("award_cursor", sa.BigInteger, nullable=False),
    sa.Column("points", sa.BigInteger, nullable=False),
    sa.Column("earned_time", sa.DateTime(timezone=True), nullable=False),
)

# Total points per user; its row is also the per-user lock that serializes a user's events.
user_points = sa.Table(
    "user_points",
    metadata,
    sa.Column("user_id", sa.String(128), primary_key=True),
    sa.Column("points", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
)

# Bumped in the same transaction as every change to `achievements`; servers compare it to
# their cached rule set, so definitions take effect everywhere without a restart.
definitions_version = sa.Table(
    "definitions_version",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.BigInteger, nullable=False),
)

# One row per delivery sink (a webhook URL, the email sink): the last award cursor delivered,
# retry state, and a lease so that one replica at a time delivers for a sink.
delivery_cursors = sa.Table(
    "delivery_cursors",
    metadata,
    sa.Column("sink", sa.String(512), primary_key=True),
    sa.Column("cursor", sa.BigInteger, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
    sa.Column("delivered", sa.BigInteger, nullable=False, server_default="0"),
)

# API keys: the secret is stored only as a SHA-256 hash (secrets are 256-bit random).
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(24), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False, server_default=""),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("scopes", JSONType, nullable=False),
    sa.Column("third_party", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoke_time", sa.DateTime(timezone=True), nullable=True),
)

# Admin console sign-ins: only a SHA-256 hash of the session token is stored, so a leaked
# table lets no one in. Any replica can check a session (see console/sessions.py).
console_sessions = sa.Table(
    "console_sessions",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("key_id", sa.String(24), nullable=False),
    sa.Column("key_name", sa.String(128), nullable=False, server_default=""),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expire_time", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_console_sessions_expire_time", "expire_time"),
)

# User profiles (see service/users.py): presentation and the attributes rule conditions read.
# Erased with the rest of a user's data.
users = sa.Table(
    "users",
    metadata,
    sa.Column("user_id", sa.String(128), primary_key=True),
    sa.Column("display_name", sa.String(200), nullable=False, server_default=""),
    sa.Column("avatar_url", sa.String(2048), nullable=False, server_default=""),
    sa.Column("time_zone", sa.String(64), nullable=False, server_default=""),
    sa.Column("locale", sa.String(64), nullable=False, server_default=""),
    sa.Column("attributes", JSONType, nullable=False),
    sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
)

# Points spent per user (redeemed minus refunded), kept from the award log's redemption and
# refund entries by its one writer (see store/port.py `effects`); spendable points are
# `user_points.points - redeemed`. Erased with the user.
point_balances = sa.Table(
    "point_balances",
    metadata,
    sa.Column("user_id", sa.String(128), primary_key=True),
    sa.Column("redeemed", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
)

# Every redemption once (`redemption_id` is the idempotency key), with the balance right
# after it (what a retry answers) and its refund. Erased with the user.
redemptions = sa.Table(
    "redemptions",
    metadata,
    sa.Column("redemption_id", sa.String(128), primary_key=True),
    sa.Column("user_id", sa.String(128), nullable=False),
    sa.Column("points", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("reward_id", sa.String(64), nullable=False, server_default=""),
    sa.Column("actor", sa.String(256), nullable=False, server_default=""),
    sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("cursor", sa.BigInteger, nullable=False),
    sa.Column("lifetime_after", sa.BigInteger, nullable=False),
    sa.Column("spendable_after", sa.BigInteger, nullable=False),
    sa.Column("refund_time", sa.DateTime(timezone=True), nullable=True),
    sa.Column("refund_reason", sa.Text, nullable=False, server_default=""),
    sa.Column("refund_actor", sa.String(256), nullable=False, server_default=""),
    sa.Column("refund_cursor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Index("ix_redemptions_user_id", "user_id"),
)

# What users are entitled to by the awards they hold (Achievement.rewards, Tier.rewards),
# kept from the award log by its one writer (see store/port.py `effects`): an award adds its
# rewards, a revocation removes those of its (achievement, tier), erasure all of the user's.
# Expired rows stay until then and are left out when read.
entitlements = sa.Table(
    "entitlements",
    metadata,
    sa.Column("user_id", sa.String(128), primary_key=True),
    sa.Column("achievement_id", sa.String(64), primary_key=True),
    sa.Column("tier", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("award_cursor", sa.BigInteger, nullable=False),
    sa.Column("grant_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expire_time", sa.DateTime(timezone=True), nullable=True),
)

# Leaderboard definitions (see service/leaderboards.py); the built-in "points" board has none.
leaderboards = sa.Table(
    "leaderboards",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    # The definition's domain fields as JSON.
    sa.Column("definition", JSONType, nullable=False),
    sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
)

# One entry per (board, period, user), written in the transaction of the award or event that
# changes the score (see store/scores.py). `period_start` is the period's start in epoch
# seconds (0 for all time), `reached` when the score last changed in epoch microseconds, and
# `neg_score` the score negated: the board order (score desc, reached, user_id) is then the
# ascending order of the ranking index, which serves pages, neighbours (either direction)
# and rank counts, with keyset positions as row-value bounds on both backends.
leaderboard_scores = sa.Table(
    "leaderboard_scores",
    metadata,
    sa.Column("board_id", sa.String(64), primary_key=True),
    sa.Column("period_start", sa.BigInteger, primary_key=True),
    sa.Column("user_id", sa.String(128), primary_key=True),
    sa.Column("neg_score", sa.Float, nullable=False),
    sa.Column("reached", sa.BigInteger, nullable=False),
    sa.Index(
        "ix_leaderboard_scores_rank", "board_id", "period_start", "neg_score", "reached", "user_id"
    ),
    sa.Index("ix_leaderboard_scores_user", "user_id"),
)

# How many entries of a board's period have each score: a rank is 1 + the sum over the scores
# above, so it costs the number of distinct scores above, not of users. Kept in the same
# statement as the entries (see store/scores.py).
leaderboard_counts = sa.Table(
    "leaderboard_counts",
    metadata,
    sa.Column("board_id", sa.String(64), primary_key=True),
    sa.Column("period_start", sa.BigInteger, primary_key=True),
    sa.Column("neg_score", sa.Float, primary_key=True),
    sa.Column("entries", sa.BigInteger, nullable=False),
)

# Analytics (see store/insights.py), kept by the write path in the transaction of what they
# count, so counts are exact. Additive counters: `period` "h", "d" or "w" and `bucket` the
# start of the hour, UTC day or ISO week; `shard` spreads the rows every batch updates over
# several, so concurrent batches do not queue on one row (queries sum over shards).
insights_rollup = sa.Table(
    "insights_rollup",
    metadata,
    sa.Column("metric", sa.String(16), primary_key=True),
    sa.Column("period", sa.String(1), primary_key=True),
    sa.Column("achievement_id", sa.String(64), primary_key=True),
    sa.Column("bucket", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("tier", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("shard", sa.SmallInteger, primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False, server_default="0"),
    sa.Index("ix_insights_rollup_bucket", "metric", "period", "bucket"),
)

# Current totals per achievement: holders of each level and users who started it.
insights_totals = sa.Table(
    "insights_totals",
    metadata,
    sa.Column("achievement_id", sa.String(64), primary_key=True),
    sa.Column("metric", sa.String(16), primary_key=True),
    sa.Column("tier", sa.String(64), primary_key=True),
    sa.Column("shard", sa.SmallInteger, primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False),
)

# When each user last sent an event of each type (explanations; active users).
insights_last_seen = sa.Table(
    "insights_last_seen",
    metadata,
    sa.Column("user_id", sa.String(128), primary_key=True),
    sa.Column("event_type", sa.String(128), primary_key=True),
    sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
)

# When each user's progress on an achievement started (time to earn a level).
insights_first = sa.Table(
    "insights_first",
    metadata,
    sa.Column("user_id", sa.String(128), primary_key=True),
    sa.Column("achievement_id", sa.String(64), primary_key=True),
    sa.Column("first_time", sa.DateTime(timezone=True), nullable=False),
)

# Condition errors on each user's events per achievement: how many, the last one (its
# message, bounded), and when (see store/insights.py); erased with the user's events. The
# achievement's count is in `insights_totals` (metric "errors"); its last error is the
# newest row here (ix_insights_errors_last), so erasure takes its text away too.
insights_errors = sa.Table(
    "insights_errors",
    metadata,
    sa.Column("user_id", sa.String(128), primary_key=True),
    sa.Column("achievement_id", sa.String(64), primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Column("last_error", sa.String(200), nullable=False),
    sa.Column("last_time", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_insights_errors_last", "achievement_id", "last_time"),
)

# Backfill jobs (see service/backfills.py): progress and awards computed from stored events,
# claimed under a lease, resumed from `checkpoint` (the last user done) on any replica.
backfills = sa.Table(
    "backfills",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("achievement_id", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("mode", sa.String(32), nullable=False),
    sa.Column("notify", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("actor", sa.String(128), nullable=False, server_default=""),
    sa.Column("checkpoint", sa.String(128), nullable=True),
    sa.Column("events_total", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("events_scanned", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("users_done", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("awards_made", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("revocations_made", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("history_truncated", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("error", sa.Text, nullable=False, server_default=""),
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
    sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("start_time", sa.DateTime(timezone=True), nullable=True),
    sa.Column("finish_time", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ix_backfills_create_time", "create_time"),
)
# A user's events in time order: backfills and previews read history user by user.
sa.Index("ix_events_user_occurred", events.c.user_id, events.c.occurred_at)
