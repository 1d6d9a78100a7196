"""Migration 7 (frozen): the erasure audit table and the call-in index retention purges by."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

_meta = sa.MetaData()
_Json = sa.JSON().with_variant(JSONB(), "postgresql")

# This step's own copies, never db/schema.py's tables.
_callin_requests = sa.Table(
    "callin_requests",
    _meta,
    sa.Column("tenant_id", sa.String(36), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)
_ix_callin_tenant_created = sa.Index(
    "ix_callin_tenant_created", _callin_requests.c.tenant_id, _callin_requests.c.created_at
)

_erasure_audit = sa.Table(
    "erasure_audit",
    _meta,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("tenant_id", sa.String(36)),
    sa.Column("tenant_name", sa.String(100)),
    sa.Column("callback_id", sa.String(36)),
    sa.Column("phone_masked", sa.String(32)),
    sa.Column("phone_hash", sa.String(64)),
    sa.Column("counts", _Json, nullable=False),
    sa.Column("corr_id", sa.String(64)),
)
_ix_audit_at = sa.Index("ix_erasure_audit_at", _erasure_audit.c.at)


def apply(conn: sa.Connection) -> None:
    """Create the erasure audit table (and its time index) and the call-in retention index."""
    _erasure_audit.create(conn, checkfirst=True)
    _ix_audit_at.create(conn, checkfirst=True)
    _ix_callin_tenant_created.create(conn, checkfirst=True)
