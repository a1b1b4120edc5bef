-- mintq schema, version 1.
-- Table, column and view names follow the seed design so that its monitoring and
-- maintenance SQL runs as written; what the seed lacked (ordering tickets, nonces,
-- signed transactions, O(1) counters) is added beside it.

-- Lifecycle of one mint request.
CREATE TYPE mint_status AS ENUM (
    'pending',     -- waiting in line
    'processing',  -- claimed into a batch whose transaction is signed or in flight
    'completed',   -- minted: the batch transaction was mined with status 1
    'failed'       -- given up, with error_message
);

-- Lifecycle of one batch transaction (one nonce of one signer).
CREATE TYPE batch_status AS ENUM (
    'signed',      -- recorded with its signed raw transaction; maybe not broadcast yet
    'pending',     -- broadcast, waiting for a receipt
    'confirmed',   -- mined with status 1
    'failed',      -- mined with status 0 (reverted)
    'dropped'      -- its nonce was consumed by another transaction; items went back to the queue
);

-- One signed transaction sent for a batch; replacements add attempts at the same nonce.
CREATE TYPE attempt_status AS ENUM (
    'sent',        -- signed and recorded, possibly broadcast
    'mined',       -- this attempt is the one the chain included
    'replaced'     -- another attempt at the same nonce was mined
);

-- Tickets give every request its place in line without counting the queue.
CREATE SEQUENCE mint_queue_position_seq;

CREATE TABLE mint_queue (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    queue_position     bigint NOT NULL DEFAULT nextval('mint_queue_position_seq'),
    payer_address      varchar(42) NOT NULL,
    payment_tx_hash    varchar(66),
    authorization_data jsonb,
    tx_hash_bytes32    varchar(66) UNIQUE,
    status             mint_status NOT NULL DEFAULT 'pending',
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    processed_at       timestamptz,
    mint_tx_hash       varchar(66),
    error_message      text,
    retry_count        integer NOT NULL DEFAULT 0,
    payment_type       varchar(16) NOT NULL,
    batch_id           uuid,
    enqueue_position   bigint,  -- place in line when enqueued, kept for history
    CONSTRAINT mint_queue_position_key UNIQUE (queue_position)
);
ALTER SEQUENCE mint_queue_position_seq OWNED BY mint_queue.queue_position;

-- The claim and the head of the line: only pending rows, in ticket order.
CREATE INDEX mint_queue_pending_idx ON mint_queue (queue_position) WHERE status = 'pending';
-- Payer lookups, newest first, and the per-payer pending cap.
CREATE INDEX mint_queue_payer_idx ON mint_queue (payer_address, created_at DESC);
CREATE INDEX mint_queue_payer_pending_idx ON mint_queue (payer_address) WHERE status = 'pending';
-- Finishing a batch touches only its items.
CREATE INDEX mint_queue_batch_idx ON mint_queue (batch_id) WHERE status = 'processing';
-- Operators list failures (seed: "Check failed mints").
CREATE INDEX mint_queue_failed_idx ON mint_queue (created_at) WHERE status = 'failed';

CREATE TABLE mint_history (
    id               bigserial PRIMARY KEY,
    queue_id         uuid NOT NULL,
    payer_address    varchar(42) NOT NULL,
    payment_tx_hash  varchar(66),
    tx_hash_bytes32  varchar(66) UNIQUE,
    mint_tx_hash     varchar(66) NOT NULL,
    amount           varchar(78),
    block_number     bigint,
    payment_type     varchar(16) NOT NULL,
    batch_id         uuid,
    created_at       timestamptz NOT NULL,
    completed_at     timestamptz NOT NULL DEFAULT now(),
    -- A request is minted at most once: history refuses a second row for it.
    CONSTRAINT mint_history_queue_id_key UNIQUE (queue_id)
);
CREATE INDEX mint_history_payer_idx ON mint_history (payer_address, completed_at DESC);

CREATE TABLE batch_mints (
    id                       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    batch_tx_hash            varchar(66) NOT NULL UNIQUE,  -- latest attempt; the mined one once final
    mint_count               integer NOT NULL,
    status                   batch_status NOT NULL DEFAULT 'signed',
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    sent_at                  timestamptz,
    confirmed_at             timestamptz,
    block_number             bigint,
    gas_used                 bigint,
    error_message            text,
    chain_id                 bigint NOT NULL,
    signer_address           varchar(42) NOT NULL,
    token_address            varchar(42) NOT NULL,
    nonce                    bigint NOT NULL,
    gas_limit                bigint NOT NULL,
    max_fee_per_gas          numeric(78, 0) NOT NULL,
    max_priority_fee_per_gas numeric(78, 0) NOT NULL,
    effective_gas_price      numeric(78, 0),
    amount_per_mint          numeric(78, 0),
    -- The fence: one batch per nonce, so two workers can never send different
    -- transactions for the same nonce, even after losing the advisory lock.
    CONSTRAINT batch_mints_nonce_key UNIQUE (chain_id, signer_address, nonce)
);
CREATE INDEX batch_mints_created_idx ON batch_mints (created_at DESC);
CREATE INDEX batch_mints_inflight_idx ON batch_mints (signer_address, nonce)
    WHERE status IN ('signed', 'pending');

CREATE TABLE batch_attempts (
    tx_hash                  varchar(66) PRIMARY KEY,
    batch_id                 uuid NOT NULL REFERENCES batch_mints (id),
    attempt                  integer NOT NULL,
    raw_tx                   text NOT NULL,
    max_fee_per_gas          numeric(78, 0) NOT NULL,
    max_priority_fee_per_gas numeric(78, 0) NOT NULL,
    status                   attempt_status NOT NULL DEFAULT 'sent',
    created_at               timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT batch_attempts_attempt_key UNIQUE (batch_id, attempt)
);

CREATE TABLE system_settings (
    key         varchar(100) PRIMARY KEY,
    value       text NOT NULL,
    description text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO system_settings (key, value, description) VALUES
    ('batch_interval_seconds', '10', 'Seconds between batch cycles'),
    ('max_batch_size', '50', 'Most requests minted in one transaction'),
    ('retry_max_attempts', '3', 'Reverted batches a request survives before it fails'),
    ('max_pending_per_payer', '10', 'Pending requests one payer may have; more get HTTP 429'),
    ('receipt_wait_seconds', '30', 'How long a cycle waits for a receipt before moving on (never a failure)');

-- The worker advances this as it claims; a request's place in line is its ticket minus
-- the tickets already claimed, plus the few re-queued requests still waiting ahead of it.
CREATE TABLE queue_cursor (
    singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    claimed_through bigint NOT NULL DEFAULT 0
);
INSERT INTO queue_cursor DEFAULT VALUES;

-- Counters behind queue_stats, kept by statement triggers so that status never scans
-- the queue. Sharded by backend so that concurrent enqueues do not queue on one row.
CREATE TABLE queue_counters (
    counter text NOT NULL,
    shard   smallint NOT NULL,
    n       bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (counter, shard)
);
INSERT INTO queue_counters (counter, shard)
SELECT c, s FROM unnest(ARRAY['pending', 'processing', 'completed', 'failed', 'payers_pending']) AS c,
                 generate_series(0, 15) AS s;

-- Pending requests per payer: rows exist only while the count is positive.
CREATE TABLE payer_pending (
    payer_address varchar(42) PRIMARY KEY,
    pending_count integer NOT NULL CHECK (pending_count > 0)
);

CREATE FUNCTION mintq_apply_counts(deltas jsonb, payer_deltas jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    my_shard smallint := pg_backend_pid() % 16;
    new_payers bigint := 0;
    gone_payers bigint := 0;
BEGIN
    -- Payer rows first, then counters, each in key order: one lock order for every
    -- writer, so enqueues and workers never deadlock on each other.
    IF payer_deltas IS NOT NULL AND payer_deltas <> '{}'::jsonb THEN
        PERFORM 1 FROM payer_pending
         WHERE payer_address IN (SELECT jsonb_object_keys(payer_deltas))
         ORDER BY payer_address FOR UPDATE;
        WITH d AS (
            SELECT key AS payer, value::bigint AS delta FROM jsonb_each_text(payer_deltas) ORDER BY key
        ), up AS (
            INSERT INTO payer_pending AS p (payer_address, pending_count)
            SELECT payer, delta FROM d WHERE delta > 0
            ON CONFLICT (payer_address) DO UPDATE SET pending_count = p.pending_count + EXCLUDED.pending_count
            RETURNING (xmax = 0) AS inserted
        )
        SELECT count(*) FILTER (WHERE inserted) INTO new_payers FROM up;
        WITH gone AS (
            DELETE FROM payer_pending p
             USING (SELECT key AS payer, value::bigint AS delta FROM jsonb_each_text(payer_deltas)) d
             WHERE p.payer_address = d.payer AND d.delta < 0 AND p.pending_count + d.delta <= 0
            RETURNING 1
        )
        SELECT count(*) INTO gone_payers FROM gone;
        UPDATE payer_pending p SET pending_count = p.pending_count + d.delta
          FROM (SELECT key AS payer, value::bigint AS delta FROM jsonb_each_text(payer_deltas)) d
         WHERE p.payer_address = d.payer AND d.delta < 0 AND p.pending_count + d.delta > 0;
        deltas := deltas || jsonb_build_object('payers_pending', new_payers - gone_payers);
    END IF;
    UPDATE queue_counters c SET n = c.n + d.delta
      FROM (SELECT key AS counter, value::bigint AS delta FROM jsonb_each_text(deltas) ORDER BY key) d
     WHERE c.counter = d.counter AND c.shard = my_shard AND d.delta <> 0;
END;
$$;

CREATE FUNCTION mint_queue_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM mintq_apply_counts(
        (SELECT coalesce(jsonb_object_agg(status, n), '{}') FROM
            (SELECT status::text, count(*) AS n FROM new_rows GROUP BY status) s),
        (SELECT coalesce(jsonb_object_agg(payer_address, n), '{}') FROM
            (SELECT payer_address, count(*) AS n FROM new_rows WHERE status = 'pending'
              GROUP BY payer_address) p));
    RETURN NULL;
END;
$$;

CREATE FUNCTION mint_queue_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM mintq_apply_counts(
        (SELECT coalesce(jsonb_object_agg(status, -n), '{}') FROM
            (SELECT status::text, count(*) AS n FROM old_rows GROUP BY status) s),
        (SELECT coalesce(jsonb_object_agg(payer_address, -n), '{}') FROM
            (SELECT payer_address, count(*) AS n FROM old_rows WHERE status = 'pending'
              GROUP BY payer_address) p));
    RETURN NULL;
END;
$$;

CREATE FUNCTION mint_queue_count_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM mintq_apply_counts(
        (SELECT coalesce(jsonb_object_agg(status, n), '{}') FROM
            (SELECT status, sum(n) AS n FROM (
                SELECT status::text, 1 AS n FROM new_rows
                UNION ALL
                SELECT status::text, -1 FROM old_rows) c
              GROUP BY status HAVING sum(n) <> 0) s),
        (SELECT coalesce(jsonb_object_agg(payer_address, n), '{}') FROM
            (SELECT payer_address, sum(n) AS n FROM (
                SELECT payer_address, 1 AS n FROM new_rows WHERE status = 'pending'
                UNION ALL
                SELECT payer_address, -1 FROM old_rows WHERE status = 'pending') c
              GROUP BY payer_address HAVING sum(n) <> 0) p));
    RETURN NULL;
END;
$$;

CREATE FUNCTION mint_queue_count_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE queue_counters SET n = 0;
    DELETE FROM payer_pending;
    RETURN NULL;
END;
$$;

CREATE TRIGGER mint_queue_count_insert AFTER INSERT ON mint_queue
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION mint_queue_count_insert();
CREATE TRIGGER mint_queue_count_update AFTER UPDATE ON mint_queue
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION mint_queue_count_update();
CREATE TRIGGER mint_queue_count_delete AFTER DELETE ON mint_queue
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION mint_queue_count_delete();
CREATE TRIGGER mint_queue_count_truncate AFTER TRUNCATE ON mint_queue
    FOR EACH STATEMENT EXECUTE FUNCTION mint_queue_count_truncate();

-- Operators' manual UPDATEs (the seed's "retry failed mints") keep updated_at honest too.
CREATE FUNCTION mintq_touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;
CREATE TRIGGER mint_queue_touch BEFORE UPDATE ON mint_queue
    FOR EACH ROW EXECUTE FUNCTION mintq_touch_updated_at();
CREATE TRIGGER batch_mints_touch BEFORE UPDATE ON batch_mints
    FOR EACH ROW EXECUTE FUNCTION mintq_touch_updated_at();

-- The seed's view, answered from counters and one index probe instead of scans, and
-- over all time rather than the original's last 24 hours.
CREATE VIEW queue_stats AS
SELECT
    (SELECT coalesce(sum(n), 0) FROM queue_counters WHERE counter = 'pending')::bigint AS pending_count,
    (SELECT coalesce(sum(n), 0) FROM queue_counters WHERE counter = 'processing')::bigint AS processing_count,
    (SELECT coalesce(sum(n), 0) FROM queue_counters WHERE counter = 'completed')::bigint AS completed_count,
    (SELECT coalesce(sum(n), 0) FROM queue_counters WHERE counter = 'failed')::bigint AS failed_count,
    (SELECT created_at FROM mint_queue WHERE status = 'pending'
      ORDER BY queue_position LIMIT 1) AS oldest_pending,
    (SELECT coalesce(sum(n), 0) FROM queue_counters WHERE counter = 'payers_pending')::bigint
        AS unique_payers_pending;

-- A pending request's place in line: requeued requests still waiting below the claim
-- cursor (few: only those put back after a failed batch), plus every ticket between the
-- cursor and this one. Tickets burned by aborted inserts are counted as if waiting, so
-- the answer errs by those rare gaps and never scans the queue.
CREATE FUNCTION mintq_queue_position(ticket bigint) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT 1
         + (SELECT count(*) FROM mint_queue
             WHERE status = 'pending' AND queue_position < least(ticket, c.claimed_through + 1))
         + greatest(0, ticket - c.claimed_through - 1)
      FROM queue_cursor c
$$;
