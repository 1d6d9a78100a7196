"""Migration 9 (frozen): operators — ``users`` (local sign-in), ``ui_sessions`` (server-side
sessions of the Callback UI), ``login_flows`` (OIDC sign-ins in progress) and
``session_keys`` (the key that signs session cookies, shared by every replica)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

# This step's own copies of the tables, never db/schema.py's.
_metadata = sa.MetaData()
_Json = sa.JSON().with_variant(JSONB(), "postgresql")

_users = sa.Table(
    "users",
    _metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("display_name", sa.String(200), nullable=False),
    sa.Column("password_hash", sa.String(200), nullable=False),
    sa.Column("roles", _Json, nullable=False),
    sa.Column("tenants", _Json),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("password_changed_at", sa.Float, nullable=False),
    sa.Column("last_login_at", sa.Float),
)

_ui_sessions = sa.Table(
    "ui_sessions",
    _metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("principal_kind", sa.String(16), nullable=False),
    sa.Column("principal_name", sa.String(200), nullable=False),
    sa.Column("principal_subject", sa.String(255), nullable=False),
    sa.Column("roles", _Json, nullable=False),
    sa.Column("tenants", _Json),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_seen_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("address", sa.String(64), nullable=False),
    sa.Column("user_agent", sa.String(200), nullable=False),
    sa.Column("ended_at", sa.Float),
    sa.Column("end_reason", sa.String(32)),
)
sa.Index("ix_ui_sessions_principal", _ui_sessions.c.principal_kind, _ui_sessions.c.principal_name)
sa.Index("ix_ui_sessions_expires", _ui_sessions.c.expires_at)

_login_flows = sa.Table(
    "login_flows",
    _metadata,
    sa.Column("state_hash", sa.String(64), primary_key=True),
    sa.Column("nonce", sa.String(255), nullable=False),
    sa.Column("code_verifier", sa.String(255), nullable=False),
    sa.Column("return_to", sa.String(500), nullable=False),
    sa.Column("binding_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)
sa.Index("ix_login_flows_expires", _login_flows.c.expires_at)

_session_keys = sa.Table(
    "session_keys",
    _metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("secret", sa.String(128), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)


def apply(conn: sa.Connection) -> None:
    """Create the operator tables."""
    _metadata.create_all(conn, checkfirst=True)
