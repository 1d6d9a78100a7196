"""Migration 8 (frozen): ``idempotency_keys``, and a booking function that stores the key with
the booking (PostgreSQL)."""

from __future__ import annotations

import sqlalchemy as sa

# This step's own copy of the table, never db/schema.py's.
_metadata = sa.MetaData()
_idempotency_keys = sa.Table(
    "idempotency_keys",
    _metadata,
    sa.Column("tenant_id", sa.String(36), primary_key=True),
    sa.Column("idem_key", sa.String(255), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("callback_id", sa.String(36), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)
sa.Index("ix_idempotency_keys_expires", _idempotency_keys.c.expires_at)
# Erasure and retention delete the keys of the callbacks they delete.
sa.Index("ix_idempotency_keys_callback", _idempotency_keys.c.callback_id)

# Version 3's function with the key: a NULL key books as before. The key is claimed first,
# before the number's lock, so a concurrent retry with the same key waits for the first
# booking's commit and then answers its id (it would otherwise count that booking against the
# number's open limit). A refused booking gives its key back (with a NULL key that delete matches nothing). Expired keys are purged two at
# a time by each keyed booking, last, with SKIP LOCKED: the purge never waits, and nothing
# waits on it while this booking still waits for a lock. The 20-argument version stays for
# replicas of the previous release during a rolling upgrade.
BOOK_CALLBACK_WITH_KEY = """
CREATE OR REPLACE FUNCTION dialback_book_callback(
    p_lock_key bigint, p_max_open integer, p_slot_start double precision, p_slot_total integer,
    p_id varchar, p_tenant_id varchar, p_service_id varchar, p_service_name varchar,
    p_phone_number varchar, p_state varchar, p_offer_type varchar,
    p_desired_time double precision, p_due_at double precision, p_priority integer,
    p_language varchar, p_user_data jsonb, p_params jsonb, p_attempt integer,
    p_max_attempts integer, p_now double precision,
    p_idem_key varchar, p_idem_hash varchar, p_idem_expires double precision,
    OUT outcome text, OUT open_count integer, OUT existing_id varchar, OUT existing_hash varchar
) LANGUAGE plpgsql VOLATILE AS $fn$
BEGIN
    IF p_idem_key IS NOT NULL THEN
        INSERT INTO idempotency_keys AS k (
            tenant_id, idem_key, request_hash, callback_id, created_at, expires_at
        ) VALUES (p_tenant_id, p_idem_key, p_idem_hash, p_id, p_now, p_idem_expires)
        ON CONFLICT (tenant_id, idem_key) DO UPDATE
           SET request_hash = EXCLUDED.request_hash, callback_id = EXCLUDED.callback_id,
               created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
         WHERE k.expires_at <= p_now;
        IF NOT FOUND THEN
            SELECT k.callback_id, k.request_hash INTO existing_id, existing_hash
              FROM idempotency_keys k
             WHERE k.tenant_id = p_tenant_id AND k.idem_key = p_idem_key;
            outcome := 'duplicate';
            open_count := 0;
            RETURN;
        END IF;
    END IF;
    PERFORM pg_advisory_xact_lock(p_lock_key);
    SELECT count(*) INTO open_count FROM callbacks
     WHERE phone_number = p_phone_number AND tenant_id = p_tenant_id
       AND state IN ('SCHEDULED', 'QUEUED', 'ROUTING', 'PROCESSING');
    IF open_count >= p_max_open THEN
        DELETE FROM idempotency_keys WHERE tenant_id = p_tenant_id AND idem_key = p_idem_key;
        outcome := 'open_limit';
        RETURN;
    END IF;
    IF p_slot_total IS NOT NULL THEN
        IF p_slot_total <= 0 THEN
            DELETE FROM idempotency_keys WHERE tenant_id = p_tenant_id AND idem_key = p_idem_key;
            outcome := 'full';
            RETURN;
        END IF;
        INSERT INTO capacity_usage AS u (service_id, slot_start, booked)
        VALUES (p_service_id, p_slot_start, 1)
        ON CONFLICT (service_id, slot_start) DO UPDATE SET booked = u.booked + 1
         WHERE u.booked < p_slot_total;
        IF NOT FOUND THEN
            DELETE FROM idempotency_keys WHERE tenant_id = p_tenant_id AND idem_key = p_idem_key;
            outcome := 'full';
            RETURN;
        END IF;
    END IF;
    INSERT INTO callbacks (
        id, tenant_id, service_id, service_name, phone_number, state, offer_type,
        desired_time, due_at, slot_start, priority, language, user_data, params, attempt,
        max_attempts, created_at, updated_at
    ) VALUES (
        p_id, p_tenant_id, p_service_id, p_service_name, p_phone_number, p_state, p_offer_type,
        p_desired_time, p_due_at, p_slot_start,
        p_priority, p_language, p_user_data, p_params, p_attempt, p_max_attempts, p_now, p_now
    );
    IF p_idem_key IS NOT NULL THEN
        DELETE FROM idempotency_keys WHERE ctid IN (
            SELECT ctid FROM idempotency_keys WHERE expires_at <= p_now
             ORDER BY expires_at LIMIT 2 FOR UPDATE SKIP LOCKED
        );
    END IF;
    outcome := 'ok';
END
$fn$
"""


def apply(conn: sa.Connection) -> None:
    """Create the idempotency-key table and the booking function that fills it."""
    _metadata.create_all(conn, checkfirst=True)
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(BOOK_CALLBACK_WITH_KEY)
