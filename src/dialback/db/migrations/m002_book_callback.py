"""Migration 2 (frozen): ``dialback_book_callback``, a booking in one round trip (PostgreSQL)."""

from __future__ import annotations

import sqlalchemy as sa

# One booking in one statement (see dialback.callbacks.booking.PostgresStore): under READ
# COMMITTED each statement of a VOLATILE plpgsql function takes a fresh snapshot, so the count
# after the lock sees every booking committed for the number before the lock was granted.
# The lock is transaction-scoped: the caller runs the call as its own (autocommit) transaction,
# so the row is committed before the next booking for the number may count. p_slot_start and
# p_slot_total are both NULL when the slot has no capacity limit.
BOOK_CALLBACK = """
CREATE OR REPLACE FUNCTION dialback_book_callback(
    p_lock_key bigint, p_max_open integer, p_slot_start double precision, p_slot_total integer,
    p_id varchar, p_tenant_id varchar, p_service_id varchar, p_service_name varchar,
    p_phone_number varchar, p_state varchar, p_offer_type varchar,
    p_desired_time double precision, p_due_at double precision, p_priority integer,
    p_language varchar, p_user_data jsonb, p_params jsonb, p_attempt integer,
    p_max_attempts integer, p_now double precision,
    OUT outcome text, OUT open_count integer
) LANGUAGE plpgsql VOLATILE AS $fn$
BEGIN
    PERFORM pg_advisory_xact_lock(p_lock_key);
{count}    IF open_count >= p_max_open THEN
        outcome := 'open_limit';
        RETURN;
    END IF;
    IF p_slot_total IS NOT NULL THEN
        IF p_slot_total <= 0 THEN
            outcome := 'full';
            RETURN;
        END IF;
        INSERT INTO capacity_usage AS u (service_id, slot_start, booked)
        VALUES (p_service_id, p_slot_start, 1)
        ON CONFLICT (service_id, slot_start) DO UPDATE SET booked = u.booked + 1
         WHERE u.booked < p_slot_total;
        IF NOT FOUND THEN
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
    outcome := 'ok';
END
$fn$
"""


# Version 2 counted through EXECUTE, planned at each call: a cached generic plan, fixed while
# the table was nearly empty, could pick the (tenant_id, created_at) index and then read every
# row of the tenant on each booking as the table grew. Planning cost more than the rest of the
# booking together.
_COUNT_PLANNED_EACH_CALL = """
    EXECUTE 'SELECT count(*) FROM callbacks WHERE tenant_id = $1 AND phone_number = $2'
         || ' AND state IN (''SCHEDULED'', ''QUEUED'', ''ROUTING'', ''PROCESSING'')'
       INTO open_count USING p_tenant_id, p_phone_number;
"""


def apply(conn: sa.Connection) -> None:
    """Create the booking function, counting with a statement planned at each call."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(BOOK_CALLBACK.replace("{count}", _COUNT_PLANNED_EACH_CALL))
