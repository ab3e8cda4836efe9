"""SQLAlchemy models: the entities, the spend-event ledger and its rollups, the managed
files and batches, the SDK BudgetManager's budgets, and the alerts with their outbox and
delivery log.

Conventions (STYLE §12): a ``naming_convention`` on the metadata so constraint names are
deterministic; timezone-aware UTC timestamps; **every** amount of money is a BIGINT of
nano-USD (columns end in ``_nanos``) and every token or unit count is a BIGINT. Field
names follow LiteLLM's schema where one exists (``key_alias``, ``max_budget``…, with
``_nanos`` added to money columns because the unit differs from LiteLLM's float USD).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    false,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "COST_ITEMS",
    "USAGE_COLUMNS",
    "AlertDeliveryRow",
    "AlertOutboxRow",
    "AlertRow",
    "Base",
    "Budget",
    "BudgetWindow",
    "EndCustomer",
    "ManagedObject",
    "Organization",
    "OrganizationMembership",
    "SdkBudget",
    "SpendEventRow",
    "SpendRollup",
    "Tag",
    "Team",
    "TeamMembership",
    "UTCDateTime",
    "User",
    "VirtualKey",
    "metadata",
]

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING_CONVENTION)

# The integer buckets of core.usage.Usage, one BIGINT column each (``seconds`` is a Decimal
# there and is stored as integer microseconds in ``seconds_micros``).
USAGE_COLUMNS = (
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "input_audio_tokens",
    "cache_read_audio_tokens",
    "input_image_tokens",
    "input_video_tokens",
    "output_tokens",
    "reasoning_tokens",
    "output_audio_tokens",
    "output_image_tokens",
    "output_video_tokens",
    "images",
    "input_images",
    "input_characters",
    "output_characters",
    "queries",
    "web_search_requests",
)
# core.pricing.breakdown.ITEMS, each stored as ``cost_<item>_nanos``.
COST_ITEMS = (
    "input",
    "cache_read",
    "cache_write",
    "input_audio",
    "input_image",
    "input_video",
    "output",
    "reasoning",
    "output_audio",
    "output_image",
    "output_video",
    "tools",
    "discount",
    "margin",
)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on both databases.

    PostgreSQL stores ``timestamptz``. SQLite has no time type: the value is stored as
    naive UTC text (which sorts correctly) and comes back aware.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC timestamp column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = metadata
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSONType,
        list[str]: JSONType,
    }


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _Audited:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_utcnow, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=_utcnow, onupdate=_utcnow, server_default=func.now()
    )
    created_by: Mapped[str | None] = mapped_column(String(255))
    updated_by: Mapped[str | None] = mapped_column(String(255))


class _Limits:
    """Budget and rate-limit fields LiteLLM puts directly on keys, users, teams, orgs."""

    max_budget_nanos: Mapped[int | None] = mapped_column(BigInteger)
    soft_budget_nanos: Mapped[int | None] = mapped_column(BigInteger)
    budget_duration: Mapped[str | None] = mapped_column(String(32))
    tpm_limit: Mapped[int | None] = mapped_column(BigInteger)
    rpm_limit: Mapped[int | None] = mapped_column(BigInteger)
    tpd_limit: Mapped[int | None] = mapped_column(BigInteger)
    max_parallel_requests: Mapped[int | None] = mapped_column(Integer)
    model_max_budget: Mapped[dict[str, Any] | None] = mapped_column()
    budget_start: Mapped[datetime | None] = mapped_column()
    """When ``budget_duration`` was set (creation or last change): where a duration that is
    no calendar unit (``90d``) counts its periods from (migration 0009)."""


class Budget(_Audited, Base):
    """A reusable budget profile (LiteLLM_BudgetTable)."""

    __tablename__ = "budgets"
    budget_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    max_budget_nanos: Mapped[int | None] = mapped_column(BigInteger)
    soft_budget_nanos: Mapped[int | None] = mapped_column(BigInteger)
    max_parallel_requests: Mapped[int | None] = mapped_column(Integer)
    tpm_limit: Mapped[int | None] = mapped_column(BigInteger)
    rpm_limit: Mapped[int | None] = mapped_column(BigInteger)
    tpd_limit: Mapped[int | None] = mapped_column(BigInteger)
    model_max_budget: Mapped[dict[str, Any] | None] = mapped_column()
    budget_duration: Mapped[str | None] = mapped_column(String(32))
    allowed_models: Mapped[list[str] | None] = mapped_column()
    budget_start: Mapped[datetime | None] = mapped_column()
    """As on :class:`_Limits`: when ``budget_duration`` was set (migration 0009)."""


class BudgetWindow(_Audited, Base):
    """One of several budget windows of an entity (LiteLLM ``budget_limits``)."""

    __tablename__ = "budget_windows"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    scope_type: Mapped[str] = mapped_column(String(16))
    scope_id: Mapped[str] = mapped_column(String(255))
    budget_duration: Mapped[str] = mapped_column(String(32))
    max_budget_nanos: Mapped[int | None] = mapped_column(BigInteger)
    soft_budget_nanos: Mapped[int | None] = mapped_column(BigInteger)
    timezone: Mapped[str | None] = mapped_column(String(64))
    __table_args__ = (
        Index("uq_budget_windows_scope", "scope_type", "scope_id", "budget_duration", unique=True),
    )


class Organization(_Limits, _Audited, Base):
    __tablename__ = "organizations"
    organization_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    organization_alias: Mapped[str | None] = mapped_column(String(255))
    budget_id: Mapped[str | None] = mapped_column(ForeignKey("budgets.budget_id"))
    models: Mapped[list[str] | None] = mapped_column()
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata")
    blocked: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class Team(_Limits, _Audited, Base):
    __tablename__ = "teams"
    team_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    team_alias: Mapped[str | None] = mapped_column(String(255))
    organization_id: Mapped[str | None] = mapped_column(
        ForeignKey("organizations.organization_id"), index=True
    )
    budget_id: Mapped[str | None] = mapped_column(ForeignKey("budgets.budget_id"))
    models: Mapped[list[str] | None] = mapped_column()
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata")
    blocked: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class User(_Limits, _Audited, Base):
    __tablename__ = "users"
    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_email: Mapped[str | None] = mapped_column(String(255))
    user_alias: Mapped[str | None] = mapped_column(String(255))
    user_role: Mapped[str] = mapped_column(
        String(32), default="internal_user", server_default="internal_user"
    )
    organization_id: Mapped[str | None] = mapped_column(
        ForeignKey("organizations.organization_id"), index=True
    )
    models: Mapped[list[str] | None] = mapped_column()
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata")
    blocked: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class TeamMembership(_Audited, Base):
    """A user in a team; the member's own budget lives in the linked budget row."""

    __tablename__ = "team_memberships"
    user_id: Mapped[str] = mapped_column(ForeignKey("users.user_id", ondelete="CASCADE"), primary_key=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.team_id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(32), default="user", server_default="user")
    budget_id: Mapped[str | None] = mapped_column(ForeignKey("budgets.budget_id"))


class OrganizationMembership(_Audited, Base):
    __tablename__ = "organization_memberships"
    user_id: Mapped[str] = mapped_column(ForeignKey("users.user_id", ondelete="CASCADE"), primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.organization_id", ondelete="CASCADE"), primary_key=True
    )
    user_role: Mapped[str] = mapped_column(String(32), default="org_member", server_default="org_member")
    budget_id: Mapped[str | None] = mapped_column(ForeignKey("budgets.budget_id"))


class EndCustomer(_Limits, _Audited, Base):
    """An end customer of the platform (LiteLLM_EndUserTable; its id is ``user_id``).

    ``team_id`` / ``organization_id`` (spendgate's addition): the tenant the customer
    belongs to; only that tenant's keys may bill it by naming it in a request.
    """

    __tablename__ = "end_customers"
    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    alias: Mapped[str | None] = mapped_column(String(255))
    team_id: Mapped[str | None] = mapped_column(ForeignKey("teams.team_id"), index=True)
    organization_id: Mapped[str | None] = mapped_column(
        ForeignKey("organizations.organization_id"), index=True
    )
    budget_id: Mapped[str | None] = mapped_column(ForeignKey("budgets.budget_id"))
    allowed_model_region: Mapped[str | None] = mapped_column(String(32))
    default_model: Mapped[str | None] = mapped_column(String(255))
    models: Mapped[list[str] | None] = mapped_column()
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata")
    blocked: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class VirtualKey(_Limits, _Audited, Base):
    """A virtual key. Only its SHA-256 hash (``token``) is stored, plus a display prefix.

    ``token`` changes when the key is regenerated; ``key_id`` (the hash it was first issued
    with) never does, so budgets, counters and spend events name the key by ``key_id``.
    """

    __tablename__ = "virtual_keys"
    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(16))
    key_name: Mapped[str | None] = mapped_column(String(255))
    key_alias: Mapped[str | None] = mapped_column(String(255), unique=True)
    expires: Mapped[datetime | None] = mapped_column()
    blocked: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    models: Mapped[list[str] | None] = mapped_column()
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata")
    tags: Mapped[list[str] | None] = mapped_column()
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.user_id"), index=True)
    team_id: Mapped[str | None] = mapped_column(ForeignKey("teams.team_id"), index=True)
    organization_id: Mapped[str | None] = mapped_column(ForeignKey("organizations.organization_id"))
    end_user_id: Mapped[str | None] = mapped_column(ForeignKey("end_customers.user_id"))
    budget_id: Mapped[str | None] = mapped_column(ForeignKey("budgets.budget_id"))
    last_active: Mapped[datetime | None] = mapped_column()


class Tag(_Audited, Base):
    __tablename__ = "tags"
    tag_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    description: Mapped[str | None] = mapped_column(String(1024))
    budget_id: Mapped[str | None] = mapped_column(ForeignKey("budgets.budget_id"))
    models: Mapped[list[str] | None] = mapped_column()
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata")


def _bigint() -> Any:
    return mapped_column(BigInteger, nullable=False, default=0, server_default="0")


class SpendEventRow(Base):
    """One billable event. Append-only; unique on ``(event_id, occurred_at)``.

    ``occurred_at`` is when the event was billed (the request settled) and is the
    PostgreSQL partition key, which is why it is part of the primary key: a replayed event
    always carries the timestamp it was journaled with.
    """

    __tablename__ = "spend_events"
    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(primary_key=True)
    started_at: Mapped[datetime | None] = mapped_column()
    status: Mapped[str] = mapped_column(String(16))
    unpriced: Mapped[bool] = mapped_column(Boolean)
    estimated: Mapped[bool] = mapped_column(Boolean)
    cost_nanos: Mapped[int] = mapped_column(BigInteger)
    cache_hit: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """Answered from the gateway's response cache: no upstream call, ``cost_nanos`` 0."""
    saved_nanos: Mapped[int] = _bigint()
    """A cache hit's saved cost: what the call would have cost (nano-USD)."""
    catalogue_version: Mapped[str | None] = mapped_column(String(64))
    price_source: Mapped[str | None] = mapped_column(String(64))
    unpriced_reason: Mapped[str | None] = mapped_column(String(255))
    service_tier: Mapped[str | None] = mapped_column(String(32))
    api_key: Mapped[str | None] = mapped_column(String(64))
    user_id: Mapped[str | None] = mapped_column(String(255))
    team_id: Mapped[str | None] = mapped_column(String(255))
    organization_id: Mapped[str | None] = mapped_column(String(255))
    end_user: Mapped[str | None] = mapped_column(String(255))
    request_tags: Mapped[list[str] | None] = mapped_column()
    requested_model: Mapped[str | None] = mapped_column(String(255))
    model: Mapped[str | None] = mapped_column(String(255))
    resolved_model: Mapped[str | None] = mapped_column(String(255))
    deployment_id: Mapped[str | None] = mapped_column(String(255))
    provider: Mapped[str | None] = mapped_column(String(64))
    endpoint: Mapped[str | None] = mapped_column(String(64))
    operation_id: Mapped[str | None] = mapped_column(String(255))
    batch_id: Mapped[str | None] = mapped_column(String(255))
    latency_ms: Mapped[int | None] = mapped_column(BigInteger)
    overhead_ms: Mapped[int | None] = mapped_column(BigInteger)
    seconds_micros: Mapped[int] = _bigint()
    image_size: Mapped[str | None] = mapped_column(String(32))
    image_quality: Mapped[str | None] = mapped_column(String(32))
    search_context_size: Mapped[str | None] = mapped_column(String(16))
    messages: Mapped[dict[str, Any] | None] = mapped_column()
    response: Mapped[dict[str, Any] | None] = mapped_column()
    adjustment: Mapped[dict[str, Any] | None] = mapped_column()
    """An ``adjustment`` event's audit record (who set the key's spend, from what to what;
    migration 0010); NULL on every other event."""

    __table_args__ = (
        # BRIN on PostgreSQL (events arrive in time order; migration 0003), B-tree on SQLite.
        Index("ix_spend_events_occurred_at", "occurred_at", postgresql_using="brin"),
        # /spend/logs' order and keyset cursor (migration 0011: per partition on PostgreSQL).
        Index("ix_spend_events_occurred_at_event_id", "occurred_at", "event_id"),
        Index("ix_spend_events_api_key_occurred_at", "api_key", "occurred_at"),
        Index("ix_spend_events_operation_id", "operation_id"),
        {"postgresql_partition_by": "RANGE (occurred_at)"},
    )


for _name in USAGE_COLUMNS:
    setattr(
        SpendEventRow, _name, mapped_column(_name, BigInteger, nullable=False, default=0, server_default="0")
    )
for _item in COST_ITEMS:
    _col = f"cost_{_item}_nanos"
    setattr(
        SpendEventRow, _col, mapped_column(_col, BigInteger, nullable=False, default=0, server_default="0")
    )


class SpendRollup(Base):
    """Exact totals per time bucket and (scope, model, provider, deployment).

    ``grain`` is the bucket width in seconds (900, 3600 or 86400: a UTC day, migration
    0011) and ``bucket`` the UTC epoch second it starts at. ``scope_type`` is ``global``,
    ``key``, ``user``, ``team``, ``org``, ``customer`` or ``tag``, or a breakdown of all
    spend: ``endpoint`` (the canonical path) or ``mode`` (``batch`` / ``realtime``; migration
    0012); an event with no team is counted under team ``''``, and an event with several
    tags once under each tag.
    """

    __tablename__ = "spend_rollups"
    grain: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    scope_type: Mapped[str] = mapped_column(String(16), primary_key=True)
    scope_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    model: Mapped[str] = mapped_column(String(255), primary_key=True)
    provider: Mapped[str] = mapped_column(String(64), primary_key=True)
    deployment_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    requests: Mapped[int] = _bigint()
    successful_requests: Mapped[int] = _bigint()
    failed_requests: Mapped[int] = _bigint()
    unpriced_requests: Mapped[int] = _bigint()
    estimated_requests: Mapped[int] = _bigint()
    cost_nanos: Mapped[int] = _bigint()
    input_tokens: Mapped[int] = _bigint()
    output_tokens: Mapped[int] = _bigint()
    cache_read_tokens: Mapped[int] = _bigint()
    cache_write_tokens: Mapped[int] = _bigint()
    reasoning_tokens: Mapped[int] = _bigint()
    latency_ms: Mapped[int] = _bigint()
    cache_hits: Mapped[int] = _bigint()
    saved_nanos: Mapped[int] = _bigint()

    __table_args__ = (
        Index("ix_spend_rollups_scope", "scope_type", "scope_id", "grain", "bucket"),
        # Room on each page for the increments to be HOT updates (migration 0003).
        {"postgresql_with": {"fillfactor": 70}},
    )


# Reports read one grain and scope type over a range of buckets, in report order (bucket,
# then the key values in byte order): this index hands PostgreSQL the rows in that order.
# No metric is in it, so rollup increments stay HOT updates. PostgreSQL only (migration
# 0003): SQLite reads the primary key.
Index(
    "ix_spend_rollups_report",
    SpendRollup.grain,
    SpendRollup.scope_type,
    SpendRollup.bucket,
    *(getattr(SpendRollup, c).collate("C") for c in ("scope_id", "model", "provider", "deployment_id")),
).ddl_if(dialect="postgresql")


class ManagedObject(Base):
    """A file or a batch that passed through the gateway (LiteLLM_ManagedObjectTable).

    ``id`` is the opaque, random id the client sees (``file-sg…``, ``batch_sg…``,
    ``msgbatch_sg…``); ``deployment_id`` and ``provider_id`` (the provider's own id) say
    where the object really lives, so a client cannot point one deployment's id at
    another. The creator's attribution (``api_key`` is the key's stable ``key_id``) is
    captured at creation and is what the batch is billed to. ``reservation`` is the
    enforcer's persisted reservation (opaque here) covering ``reserved_nanos``; the batch is
    billed once, when a poller that ``claimed_*`` it sets ``settled_at`` and ``cost_nanos``
    (NULL until then). A batch stuck too long is retired: ``stale`` and ``settled_at`` set,
    nothing billed. Statements live in ``spendgate.batches.store``.
    """

    __tablename__ = "managed_objects"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    api: Mapped[str] = mapped_column(String(16))
    deployment_id: Mapped[str | None] = mapped_column(String(255))
    provider_id: Mapped[str | None] = mapped_column(String(255))
    model_group: Mapped[str | None] = mapped_column(String(255))
    purpose: Mapped[str | None] = mapped_column(String(32))
    endpoint: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    input_file_id: Mapped[str | None] = mapped_column(String(255))
    output_file_id: Mapped[str | None] = mapped_column(String(255))
    error_file_id: Mapped[str | None] = mapped_column(String(255))
    requests_total: Mapped[int] = _bigint()
    requests_completed: Mapped[int] = _bigint()
    requests_failed: Mapped[int] = _bigint()
    api_key: Mapped[str | None] = mapped_column(String(64))
    user_id: Mapped[str | None] = mapped_column(String(255))
    team_id: Mapped[str | None] = mapped_column(String(255))
    organization_id: Mapped[str | None] = mapped_column(String(255))
    end_user: Mapped[str | None] = mapped_column(String(255))
    tags: Mapped[list[str] | None] = mapped_column()
    reservation: Mapped[dict[str, Any] | None] = mapped_column()
    reserved_nanos: Mapped[int] = _bigint()
    cost_nanos: Mapped[int | None] = mapped_column(BigInteger)
    unpriced: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    usage: Mapped[dict[str, Any] | None] = mapped_column()
    settled_at: Mapped[datetime | None] = mapped_column()
    claimed_by: Mapped[str | None] = mapped_column(String(255))
    claimed_at: Mapped[datetime | None] = mapped_column()
    stale: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_utcnow, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=_utcnow, onupdate=_utcnow, server_default=func.now()
    )
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata")
    bytes: Mapped[int | None] = mapped_column(BigInteger)
    filename: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (
        # The poller's two lanes: unsettled batches in creation order, keyset (created_at, id).
        Index("ix_managed_objects_poll", "kind", "settled_at", "created_at", "id"),
        # Listings: a key's own objects, and a team admin's team's, in creation order.
        Index("ix_managed_objects_owner", "api_key", "kind", "created_at", "id"),
        Index("ix_managed_objects_team", "team_id", "kind", "created_at", "id"),
    )


class SdkBudget(Base):
    """One user's budget of an SDK ``BudgetManager`` project (issue #14; LiteLLM keeps these
    in ``user_cost.json``), shared by every process that opens the manager on this database.

    Money is BIGINT nano-USD: ``current_cost_nanos`` (this period's spend),
    ``reserved_nanos`` (the sum of ``reservations``, calls in flight, each
    ``{id: [nanos, lease end]}``) and ``model_cost`` (``{model: nanos}``). ``period_start``
    is the calendar period the costs belong to (``calendar``, in ``timezone``);
    ``duration_days`` is LiteLLM's rolling day count. Statements live in
    ``spendgate.sdk.budget_store_database``; ``check_and_reserve`` is one conditional UPDATE
    (``current + reserved + worst <= total``).
    """

    __tablename__ = "sdk_budgets"
    project: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    total_budget_nanos: Mapped[int] = mapped_column(BigInteger)
    duration: Mapped[str | None] = mapped_column(String(16))
    duration_days: Mapped[int | None] = mapped_column(Integer)
    calendar: Mapped[bool] = mapped_column(Boolean, default=True, server_default="1")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    period_start: Mapped[datetime | None] = mapped_column()
    current_cost_nanos: Mapped[int] = _bigint()
    reserved_nanos: Mapped[int] = _bigint()
    model_cost: Mapped[dict[str, Any] | None] = mapped_column()
    reservations: Mapped[dict[str, Any] | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_utcnow, server_default=func.now())
    last_updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=_utcnow, server_default=func.now()
    )


class AlertRow(Base):
    """One alert decided (issue #15): the decision row, written once across instances.

    The unique key (``kind``, ``scope_type``, ``scope_id``, ``window``, ``period_start``,
    ``threshold``) is what makes an alert fire once: every instance that decides the same
    crossing inserts-or-ignores the same key. Its columns are NOT NULL (SQL treats NULLs as
    distinct in a unique key): no window is ``""``, no period is the epoch, no threshold is
    ``""`` (else the percent as exact decimal text, ``"80"``, ``"87.5"``). Money is BIGINT
    nano-USD. Statements live in ``spendgate.alerts.store``.
    """

    __tablename__ = "alerts"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    scope_type: Mapped[str] = mapped_column(String(32))
    scope_id: Mapped[str] = mapped_column(String(255))
    scope_name: Mapped[str | None] = mapped_column(String(255))
    window: Mapped[str] = mapped_column(String(32))
    period_start: Mapped[datetime] = mapped_column()
    period_end: Mapped[datetime | None] = mapped_column()
    threshold: Mapped[str] = mapped_column(String(16))
    spend_nanos: Mapped[int | None] = mapped_column(BigInteger)
    limit_nanos: Mapped[int | None] = mapped_column(BigInteger)
    reset_at: Mapped[datetime | None] = mapped_column()
    message: Mapped[str] = mapped_column(String(2000))
    extra: Mapped[dict[str, Any] | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_utcnow, server_default=func.now())

    __table_args__ = (
        Index(
            "uq_alerts_decision",
            "kind",
            "scope_type",
            "scope_id",
            "window",
            "period_start",
            "threshold",
            unique=True,
        ),
        Index("ix_alerts_created", "created_at", "id"),
    )


class AlertOutboxRow(Base):
    """One alert to deliver to one channel: written with its alert, drained by the sender job.

    ``status``: ``pending`` (to send at ``next_attempt_at``), ``sent`` or ``dead`` (retried
    for ``retry_hours`` without success). A sender claims a row by one conditional UPDATE
    (``claim_token``, ``claimed_until``: a lease), so two senders never hold it at once and
    a sender that died mid-send is overtaken once its lease ends. ``delivery_id`` is the
    webhook-id a receiver sees on every attempt (stable across retries).
    """

    __tablename__ = "alert_outbox"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(64))
    delivery_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column()
    claim_token: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_utcnow, server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        Index("uq_alert_outbox_alert_channel", "alert_id", "channel", unique=True),
        Index("ix_alert_outbox_due", "status", "next_attempt_at", "id"),
    )


class AlertDeliveryRow(Base):
    """One attempt to deliver an outbox row (the delivery log): when, how long, what came back.

    ``outcome``: ``sent``, ``retry`` (failed; tried again later) or ``dead`` (failed, and the
    retry window is over). ``status_code`` is the HTTP status (or the SMTP reply code);
    ``error`` a short description without secrets (never a URL's token or a password).
    """

    __tablename__ = "alert_deliveries"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("alert_outbox.id", ondelete="CASCADE"))
    alert_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(64))
    attempt: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16))
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    duration_ms: Mapped[int] = mapped_column(Integer)
    attempted_at: Mapped[datetime] = mapped_column()
    sender: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (
        Index("ix_alert_deliveries_outbox", "outbox_id", "attempt"),
        Index("ix_alert_deliveries_attempted", "attempted_at", "id"),
    )
