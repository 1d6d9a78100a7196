"""Migration 10 (frozen): the audit log of operators' actions and failed sign-ins."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

_meta = sa.MetaData()
_Json = sa.JSON().with_variant(JSONB(), "postgresql")
# This step's own copy, never db/schema.py's table.
_audit_log = sa.Table(
    "audit_log",
    _meta,
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
    sa.Column("detail", _Json, nullable=False),
)
_indexes = (
    sa.Index("ix_audit_log_at", _audit_log.c.at),
    sa.Index("ix_audit_log_tenant_at", _audit_log.c.tenant, _audit_log.c.at),
    sa.Index("ix_audit_log_callback", _audit_log.c.callback_id),
    sa.Index("ix_audit_log_actor_at", _audit_log.c.actor, _audit_log.c.at),
)


def apply(conn: sa.Connection) -> None:
    """Create the audit log and its indexes."""
    _audit_log.create(conn, checkfirst=True)
    for index in _indexes:
        index.create(conn, checkfirst=True)
