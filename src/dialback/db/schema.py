"""The one schema definition shared by PostgreSQL and the embedded SQLite store.

Times are stored as float epoch seconds (UTC) so both engines compare and index them alike.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from dialback.callbacks.lifecycle import OPEN_STATES

# The states whose attempt the routing engine holds, each with a deadline.
ROUTED_DEADLINE_STATES = ("QUEUED", "ROUTING", "PROCESSING")

metadata = sa.MetaData()

Json = sa.JSON().with_variant(JSONB(), "postgresql")

tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("settings", Json, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.Float, nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("tenant_id", sa.String(36), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(12), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float),
)

services = sa.Table(
    "services",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("tenant_id", sa.String(36), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("config", Json, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.UniqueConstraint("tenant_id", "name", name="uq_services_tenant_name"),
)

callbacks = sa.Table(
    "callbacks",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("tenant_id", sa.String(36), nullable=False),
    sa.Column("service_id", sa.String(36), nullable=False),
    sa.Column("service_name", sa.String(100), nullable=False),
    sa.Column("phone_number", sa.String(32), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(32)),
    sa.Column("offer_type", sa.String(40), nullable=False),
    sa.Column("desired_time", sa.Float),
    sa.Column("due_at", sa.Float, nullable=False),
    sa.Column("slot_start", sa.Float),
    sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
    sa.Column("language", sa.String(20), nullable=False),
    sa.Column("user_data", Json, nullable=False),
    sa.Column("params", Json, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False, server_default="1"),
    sa.Column("max_attempts", sa.Integer, nullable=False, server_default="1"),
    sa.Column("last_reason", sa.String(32)),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("queued_at", sa.Float),
    sa.Column("routed_at", sa.Float),
    sa.Column("completed_at", sa.Float),
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_expires_at", sa.Float),
)
sa.Index("ix_callbacks_due", callbacks.c.state, callbacks.c.due_at)
sa.Index("ix_callbacks_phone", callbacks.c.tenant_id, callbacks.c.phone_number, callbacks.c.state)
sa.Index("ix_callbacks_queue", callbacks.c.service_id, callbacks.c.state, callbacks.c.queued_at)
sa.Index("ix_callbacks_tenant_created", callbacks.c.tenant_id, callbacks.c.created_at)
# The open-callbacks-per-number count of every booking: small (open rows only), and the only
# index that fits that count, so a cached generic plan uses it however the table grows.
ix_callbacks_open_number = sa.Index(
    "ix_callbacks_open_number",
    callbacks.c.phone_number,
    callbacks.c.tenant_id,
    postgresql_where=callbacks.c.state.in_(OPEN_STATES),
    sqlite_where=callbacks.c.state.in_(OPEN_STATES),
)
# Completions per service over a recent window (statistics) and the last routed completions
# (EWT): completed rows only, newest last per service, the reason in the index itself.
ix_callbacks_completed = sa.Index(
    "ix_callbacks_completed",
    callbacks.c.service_id,
    callbacks.c.completed_at,
    callbacks.c.reason,
    postgresql_where=callbacks.c.state == "COMPLETED",
    sqlite_where=callbacks.c.state == "COMPLETED",
)
# The deadline sweep (monitor.deadlines): routed attempts by their held deadline, or, none
# held yet, by when they entered their state; routed rows only, so a backlog of SCHEDULED or
# the completed history costs it nothing.
ix_callbacks_routed_deadline = sa.Index(
    "ix_callbacks_routed_deadline",
    callbacks.c.state,
    callbacks.c.lease_expires_at,
    callbacks.c.updated_at,
    postgresql_where=callbacks.c.state.in_(ROUTED_DEADLINE_STATES),
    sqlite_where=callbacks.c.state.in_(ROUTED_DEADLINE_STATES),
)

# The admin/UI list by tenant and state sorted by due time and id, a page read in index order,
# and its count (m011, id added by m013).
sa.Index(
    "ix_callbacks_tenant_state_due_id",
    callbacks.c.tenant_id,
    callbacks.c.state,
    callbacks.c.due_at,
    callbacks.c.id,
)
# The retention purge: a tenant's completed rows by completion time (m011).
ix_callbacks_tenant_completed = sa.Index(
    "ix_callbacks_tenant_completed",
    callbacks.c.tenant_id,
    callbacks.c.completed_at,
    postgresql_where=callbacks.c.state == "COMPLETED",
    sqlite_where=callbacks.c.state == "COMPLETED",
)

callback_events = sa.Table(
    "callback_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("callback_id", sa.String(36), nullable=False, index=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("from_state", sa.String(16)),
    sa.Column("to_state", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(32)),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    # The corrId of the request or monitor step that made the change (m012; NULL before it).
    sa.Column("corr_id", sa.String(64)),
)
# The Developer page's lookup by corrId (m012); rows without one cost the index nothing.
ix_callback_events_corr_id = sa.Index(
    "ix_callback_events_corr_id",
    callback_events.c.corr_id,
    postgresql_where=callback_events.c.corr_id.is_not(None),
    sqlite_where=callback_events.c.corr_id.is_not(None),
)

# Callbacks the monitor set aside because their row cannot be read or published (a poison
# row): the claim skips them, the admin API shows them with the reason. Their state stays.
parked_callbacks = sa.Table(
    "parked_callbacks",
    metadata,
    sa.Column("callback_id", sa.String(36), primary_key=True),
    sa.Column("tenant_id", sa.String(36), nullable=False),
    sa.Column("parked_at", sa.Float, nullable=False),
    sa.Column("reason", sa.String(200), nullable=False),
)

capacity_usage = sa.Table(
    "capacity_usage",
    metadata,
    sa.Column("service_id", sa.String(36), primary_key=True),
    sa.Column("slot_start", sa.Float, primary_key=True),
    sa.Column("booked", sa.Integer, nullable=False),
)

callin_groups = sa.Table(
    "callin_groups",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("tenant_id", sa.String(36), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("config", Json, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.UniqueConstraint("tenant_id", "name", name="uq_callin_groups_tenant_name"),
)

callin_requests = sa.Table(
    "callin_requests",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("tenant_id", sa.String(36), nullable=False),
    sa.Column("group_id", sa.String(36), nullable=False),
    sa.Column("group_name", sa.String(100), nullable=False),
    sa.Column("to_phone_number", sa.String(32), nullable=False),
    sa.Column("from_phone_number", sa.String(32)),
    sa.Column("access_code", sa.String(12)),
    sa.Column("user_data", Json, nullable=False),
    sa.Column("callback_service_id", sa.String(100)),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("matched_at", sa.Float),
)
sa.Index(
    "ix_callin_match",
    callin_requests.c.to_phone_number,
    callin_requests.c.access_code,
    callin_requests.c.expires_at,
)
sa.Index("ix_callin_tenant_created", callin_requests.c.tenant_id, callin_requests.c.created_at)

# One row per erasure (admin API): who, when, what and how much; the number only masked and
# as a keyed hash, never in clear.
erasure_audit = sa.Table(
    "erasure_audit",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("tenant_id", sa.String(36)),
    sa.Column("tenant_name", sa.String(100)),
    sa.Column("callback_id", sa.String(36)),
    sa.Column("phone_masked", sa.String(32)),
    sa.Column("phone_hash", sa.String(64)),
    sa.Column("counts", Json, nullable=False),
    sa.Column("corr_id", sa.String(64)),
)
sa.Index("ix_erasure_audit_at", erasure_audit.c.at)

# The Idempotency-Key of a create, stored with its booking (in the same transaction): a retry
# with the key answers the callback booked first, until ``expires_at``.
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("tenant_id", sa.String(36), primary_key=True),
    sa.Column("idem_key", sa.String(255), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("callback_id", sa.String(36), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)
sa.Index("ix_idempotency_keys_expires", idempotency_keys.c.expires_at)
sa.Index("ix_idempotency_keys_callback", idempotency_keys.c.callback_id)

# Local operators (identity/users.py): the password only as an argon2id hash; ``tenants`` NULL
# means every tenant.
users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("display_name", sa.String(200), nullable=False),
    sa.Column("password_hash", sa.String(200), nullable=False),
    sa.Column("roles", Json, nullable=False),
    sa.Column("tenants", Json),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("password_changed_at", sa.Float, nullable=False),
    sa.Column("last_login_at", sa.Float),
)

# Callback UI sessions (identity/sessions.py), keyed by the SHA-256 of the session id: the
# store never holds a usable cookie.
ui_sessions = sa.Table(
    "ui_sessions",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("principal_kind", sa.String(16), nullable=False),
    sa.Column("principal_name", sa.String(200), nullable=False),
    sa.Column("principal_subject", sa.String(255), nullable=False),
    sa.Column("roles", Json, nullable=False),
    sa.Column("tenants", Json),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_seen_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("address", sa.String(64), nullable=False),
    sa.Column("user_agent", sa.String(200), nullable=False),
    sa.Column("ended_at", sa.Float),
    sa.Column("end_reason", sa.String(32)),
)
sa.Index("ix_ui_sessions_principal", ui_sessions.c.principal_kind, ui_sessions.c.principal_name)
sa.Index("ix_ui_sessions_expires", ui_sessions.c.expires_at)

# OIDC sign-ins in progress, keyed by the SHA-256 of ``state``; each is taken once.
login_flows = sa.Table(
    "login_flows",
    metadata,
    sa.Column("state_hash", sa.String(64), primary_key=True),
    sa.Column("nonce", sa.String(255), nullable=False),
    sa.Column("code_verifier", sa.String(255), nullable=False),
    sa.Column("return_to", sa.String(500), nullable=False),
    sa.Column("binding_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)
sa.Index("ix_login_flows_expires", login_flows.c.expires_at)

# The generated key that signs session cookies when DIALBACK_SESSION_SECRET is unset: in the
# store, so every replica signs and verifies alike.
session_keys = sa.Table(
    "session_keys",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("secret", sa.String(128), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)
# Who did what to which object, when, from where, with which corrId: every state-changing admin
# call, UI action and failed sign-in. Never secret material; no phone numbers, no userData.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("actor_kind", sa.String(16), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("object_type", sa.String(32), nullable=False),
    sa.Column("object_id", sa.String(200), nullable=False),
    sa.Column("tenant", sa.String(100)),
    sa.Column("callback_id", sa.String(36)),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("address", sa.String(64), nullable=False),
    sa.Column("corr_id", sa.String(64), nullable=False),
    sa.Column("detail", Json, nullable=False),
)
sa.Index("ix_audit_log_at", audit_log.c.at)
sa.Index("ix_audit_log_tenant_at", audit_log.c.tenant, audit_log.c.at)
sa.Index("ix_audit_log_callback", audit_log.c.callback_id)
sa.Index("ix_audit_log_actor_at", audit_log.c.actor, audit_log.c.at)
