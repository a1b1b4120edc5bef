-- Enqueue closer to the cost of a plain INSERT (issue 14, after 0014). Counted in CPU instructions
-- per call on the server (callgrind, postgres --single, 1,000 calls after 200 warm-up ones), a
-- plain INSERT ... RETURNING into a table of the same basic shape costs 206k; the enqueue as the
-- API called it (mintq_enqueue joined with mint_throughput) cost 1,736k. This migration brings it
-- to about 625k:
--
-- 1. One row of counters per shard (queue_counts), so a writer updates one row once.
-- 2. mintq_enqueue counts its own row: it takes the payer's place under the cap in the upsert it
--    needs anyway (atomically now) and adds its row to its shard in one UPDATE; the insert
--    trigger, which cost over 400k per call (a transition table, a PL/pgSQL call, three statements),
--    skips its statement and still counts every other INSERT (the paid path, operators' SQL).
-- 3. A free request makes 3 index entries instead of 6: the paid rows' unique keys index only
--    paid rows, and the ticket is unique among pending rows in the index that orders the line.
-- 4. The settings it reads (an aggregate over four keys of system_settings: 150k) are kept in
--    one row by a trigger on system_settings, read with the cursor and the throughput at once.
-- 5. The place in line comes from a cached plan (it was planned afresh on every call).
-- 6. The answer is a named row type with only the columns the API reads.
--
-- Plans are cached per session, and a plan made while a table was empty (a fresh deployment,
-- a table nobody analysed yet) can scan it sequentially for the session's life: the enqueue's
-- read of payer_pending did, in a fresh database, for every call. The enqueue and the place-in-
-- line functions therefore plan with enable_seqscan off (every lookup in them has an index; the
-- singleton tables they read are one page whatever the plan) and generic plans only (one per
-- session, never re-planned with a call's values).

-- Nothing writes mint_queue (nor so its counters) while the counters move to their new table.
LOCK TABLE mint_queue IN SHARE ROW EXCLUSIVE MODE;

-- 1. One row per shard ----------------------------------------------------------------------
-- fillfactor 10: a page holds a few shards, so concurrent writers of different shards rarely
-- share a page (and its lock), and each row keeps room for its HOT versions.
CREATE TABLE queue_counts (
    shard          smallint PRIMARY KEY,  -- 0..63, all inserted here (no CHECK: one is re-read per UPDATE)
    pending        bigint NOT NULL DEFAULT 0,
    processing     bigint NOT NULL DEFAULT 0,
    completed      bigint NOT NULL DEFAULT 0,
    failed         bigint NOT NULL DEFAULT 0,
    payers_pending bigint NOT NULL DEFAULT 0
) WITH (fillfactor = 10);
INSERT INTO queue_counts (shard, pending, processing, completed, failed, payers_pending)
SELECT s,
       coalesce(sum(n) FILTER (WHERE counter = 'pending'), 0),
       coalesce(sum(n) FILTER (WHERE counter = 'processing'), 0),
       coalesce(sum(n) FILTER (WHERE counter = 'completed'), 0),
       coalesce(sum(n) FILTER (WHERE counter = 'failed'), 0),
       coalesce(sum(n) FILTER (WHERE counter = 'payers_pending'), 0)
  FROM generate_series(0, 63) AS s
  LEFT JOIN queue_counters c ON c.shard = s
 GROUP BY s;

CREATE OR REPLACE VIEW queue_stats AS
SELECT sum(c.pending)::bigint AS pending_count,
       sum(c.processing)::bigint AS processing_count,
       sum(c.completed)::bigint AS completed_count,
       sum(c.failed)::bigint AS failed_count,
       (SELECT m.created_at FROM mint_queue m WHERE m.status = 'pending'
         ORDER BY m.queue_position LIMIT 1) AS oldest_pending,
       sum(c.payers_pending)::bigint AS unique_payers_pending
  FROM queue_counts c;

-- The same signature as before (roles are refused it by name), on the new table: payer rows first
-- in key order, then the shard's one row, the lock order of every writer.
CREATE OR REPLACE FUNCTION mintq_apply_counts(deltas jsonb, payer_deltas jsonb) RETURNS void
LANGUAGE plpgsql
SET jit = off
AS $$
DECLARE
    payers_delta bigint := 0;
    entry record;
    remaining integer;
BEGIN
    FOR entry IN SELECT key AS payer, value::integer AS delta
                   FROM jsonb_each_text(coalesce(payer_deltas, '{}'::jsonb)) ORDER BY key LOOP
        IF entry.delta > 0 THEN
            INSERT INTO payer_pending AS p (payer_address, pending_count)
            VALUES (entry.payer, entry.delta)
            ON CONFLICT (payer_address) DO UPDATE SET pending_count = p.pending_count + EXCLUDED.pending_count
            RETURNING (xmax = 0)::integer INTO remaining;
            payers_delta := payers_delta + remaining;  -- 1 when this payer just joined the line
        ELSIF entry.delta < 0 THEN
            UPDATE payer_pending SET pending_count = pending_count + entry.delta
             WHERE payer_address = entry.payer AND pending_count + entry.delta > 0
            RETURNING pending_count INTO remaining;
            IF NOT FOUND THEN
                DELETE FROM payer_pending WHERE payer_address = entry.payer;
                IF FOUND THEN
                    payers_delta := payers_delta - 1;
                END IF;
            END IF;
        END IF;
    END LOOP;
    deltas := coalesce(deltas, '{}'::jsonb);  -- the triggers pass only non-zero deltas
    IF payers_delta <> 0 OR deltas <> '{}'::jsonb THEN
        UPDATE queue_counts
           SET pending = pending + coalesce((deltas ->> 'pending')::bigint, 0),
               processing = processing + coalesce((deltas ->> 'processing')::bigint, 0),
               completed = completed + coalesce((deltas ->> 'completed')::bigint, 0),
               failed = failed + coalesce((deltas ->> 'failed')::bigint, 0),
               payers_pending = payers_pending + payers_delta
         WHERE shard = pg_backend_pid() % 64;
    END IF;
END;
$$;

-- An INSERT counted by its statement: payer rows in key order, then the shard's row, once.
CREATE OR REPLACE FUNCTION mint_queue_count_insert() RETURNS trigger
LANGUAGE plpgsql
SET jit = off
AS $$
DECLARE
    joined bigint;
BEGIN
    WITH up AS (
        INSERT INTO payer_pending AS p (payer_address, pending_count)
        SELECT payer_address, count(*) FROM new_rows WHERE status = 'pending'
         GROUP BY payer_address ORDER BY payer_address
        ON CONFLICT (payer_address) DO UPDATE SET pending_count = p.pending_count + EXCLUDED.pending_count
        RETURNING (xmax = 0) AS inserted
    )
    SELECT count(*) FILTER (WHERE inserted) INTO joined FROM up;
    UPDATE queue_counts c
       SET pending = c.pending + n.pending, processing = c.processing + n.processing,
           completed = c.completed + n.completed, failed = c.failed + n.failed,
           payers_pending = c.payers_pending + joined
      FROM (SELECT count(*) FILTER (WHERE status = 'pending') AS pending,
                   count(*) FILTER (WHERE status = 'processing') AS processing,
                   count(*) FILTER (WHERE status = 'completed') AS completed,
                   count(*) FILTER (WHERE status = 'failed') AS failed
              FROM new_rows) n
     WHERE c.shard = pg_backend_pid() % 64;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION mint_queue_count_truncate() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    UPDATE queue_counts SET pending = 0, processing = 0, completed = 0, failed = 0, payers_pending = 0;
    DELETE FROM payer_pending;
    RETURN NULL;
END;
$$;

-- Re-pinned as 0010 pinned them: CREATE OR REPLACE keeps SECURITY DEFINER but not a SET list.
DO $$
DECLARE
    fn text;
BEGIN
    FOREACH fn IN ARRAY ARRAY['mint_queue_count_insert()', 'mint_queue_count_truncate()'] LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = %I, pg_temp',
                       fn, current_schema());
    END LOOP;
END;
$$;

DROP TABLE queue_counters;

-- 2. The insert trigger leaves mintq_enqueue's own statement to it ----------------------------
-- A statement trigger's WHEN cannot see rows, but it can read a setting; mintq_enqueue sets this
-- one in its SET list, so it holds for the function's statements only and is restored when the
-- function returns or fails. A session that sets it by hand and inserts directly skews only its
-- own counts: the API and worker logins can insert requests directly anyway (the paid path).
DROP TRIGGER mint_queue_count_insert ON mint_queue;
CREATE TRIGGER mint_queue_count_insert AFTER INSERT ON mint_queue
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    WHEN (current_setting('mintq.enqueue', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION mint_queue_count_insert();

-- 3. Index entries a free request does not need -----------------------------------------------
-- NULL never conflicts in a unique index, so a free request's NULL entries only cost inserts.
ALTER TABLE mint_queue DROP CONSTRAINT mint_queue_tx_hash_bytes32_key;
CREATE UNIQUE INDEX mint_queue_tx_hash_bytes32_key ON mint_queue (tx_hash_bytes32)
    WHERE tx_hash_bytes32 IS NOT NULL;
ALTER TABLE mint_queue DROP CONSTRAINT mint_queue_payment_id_key;
CREATE UNIQUE INDEX mint_queue_payment_id_key ON mint_queue (payment_id) WHERE payment_id IS NOT NULL;
-- A ticket is a place in line only while its request waits: one pending request per ticket,
-- in the same index that orders the line for the claim, the head probe and the place count.
ALTER TABLE mint_queue DROP CONSTRAINT mint_queue_position_key;
DROP INDEX mint_queue_pending_idx;
CREATE UNIQUE INDEX mint_queue_pending_idx ON mint_queue (queue_position) WHERE status = 'pending';
-- The indexes of mint_queue and the queries each serves (entries a free pending request makes: 3):
--   mint_queue_pkey (id)                          queue_item, paid_request, every UPDATE by id
--   mint_queue_pending_idx (ticket; pending)      claim_requests, mintq_queue_position, queue_stats,
--                                                 one pending request per ticket
--   mint_queue_payer_idx (payer, created_at)      payer_requests (GET /queue/payer/{address})
--   mint_queue_tx_hash_bytes32_key (paid rows)    one request per payment key (enqueue_paid_request)
--   mint_queue_payment_id_key (paid rows)         one request per payment, refunds_due
--   mint_queue_batch_idx (processing, batch)      complete_batch, revert_batch, drop_batch
--   mint_queue_failed_idx, mint_queue_finished_idx  operators' failed list, retention

-- 4. The settings an enqueue reads, kept in one row ------------------------------------------
-- Reading them from system_settings (four keys, an aggregate, the cap's pattern check) cost the
-- enqueue more than its INSERT. A statement trigger on system_settings rewrites this row from the
-- same rules whenever a setting changes (mintq settings set, mintq pause, plain SQL), in the
-- changing transaction: the enqueue always reads the committed settings, never a stale copy.
CREATE TABLE enqueue_settings (
    singleton              boolean PRIMARY KEY DEFAULT true,
    max_pending_per_payer  integer,  -- NULL when unset or not a whole number: the caller's default
    max_batch_size         text,
    batch_interval_seconds text,
    api_closed             boolean NOT NULL DEFAULT false
);
INSERT INTO enqueue_settings DEFAULT VALUES;

CREATE FUNCTION mintq_mirror_enqueue_settings() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    UPDATE enqueue_settings e
       SET (max_pending_per_payer, max_batch_size, batch_interval_seconds, api_closed) = (
           SELECT max(CASE WHEN s.key = 'max_pending_per_payer' AND s.value ~ '^[0-9]{1,9}$'
                           THEN s.value::int END),
                  max(CASE WHEN s.key = 'max_batch_size' THEN s.value END),
                  max(CASE WHEN s.key = 'batch_interval_seconds' THEN s.value END),
                  coalesce(bool_or(s.key = 'api_closed'
                                   AND lower(trim(s.value)) IN ('true', 'on', 'yes', '1')), false)
             FROM system_settings s
            WHERE s.key IN ('max_pending_per_payer', 'max_batch_size', 'batch_interval_seconds',
                            'api_closed'));
    RETURN NULL;
END;
$$;
-- As the owner, like the counter triggers: whoever may change a setting keeps the mirror in step.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION mintq_mirror_enqueue_settings() SECURITY DEFINER SET search_path = %I, pg_temp',
                   current_schema());
END;
$$;
CREATE TRIGGER system_settings_mirror AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON system_settings
    FOR EACH STATEMENT EXECUTE FUNCTION mintq_mirror_enqueue_settings();
UPDATE system_settings SET value = value WHERE false;  -- fires the trigger: the row starts in step

-- 5. The place in line without planning ------------------------------------------------------
-- 0005 planned the count of re-queued requests below the cursor afresh on every call
-- (plan_cache_mode = force_custom_plan), since a generic plan could scan the table. With
-- sequential scans off, the cached generic plan can only be a range of the pending index, which
-- holds the few re-queued requests below the cursor (and claimed rows' entries until vacuumed).
CREATE OR REPLACE FUNCTION mintq_queue_position(ticket bigint) RETURNS bigint
LANGUAGE plpgsql STABLE
SET jit = off
SET enable_seqscan = off
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    cursor_at bigint;
    requeued  bigint := 0;
BEGIN
    SELECT c.claimed_through INTO cursor_at FROM queue_cursor c;
    IF cursor_at > 0 THEN
        SELECT count(*) INTO requeued FROM mint_queue m
         WHERE m.status = 'pending' AND m.queue_position < least(ticket, cursor_at + 1);
    END IF;
    RETURN 1 + requeued + greatest(0, ticket - cursor_at - 1);
END;
$$;

-- 6. The enqueue ------------------------------------------------------------------------------
-- What it reads (settings, the claim cursor, the measured throughput) in one
-- statement, the payer's cap taken atomically, the row with its place in line, its count: four
-- statements. Runs as the owner: it writes payer_pending and queue_counts, which the API role
-- may not. The cap is now taken, not read: the upsert locks the payer's row, so two requests of
-- one payer can no longer both pass at cap - 1.
DROP FUNCTION mintq_enqueue(text, text, integer);
-- The answer is a named row type: its descriptor comes from the type cache, where OUT parameters
-- (or RETURNS TABLE) make PostgreSQL build one from the function's signature on every call.
-- Every column the previous enqueue query read is still here (created_at, payer_pending): the
-- functions' code is updated after the migrations run, so it calls this one for a while.
CREATE TYPE mintq_enqueued AS (
    id                     uuid,              -- NULL when refused (API closed, payer at the cap)
    queue_position         bigint,            -- the place in line, 1 = next
    created_at             timestamptz,
    payer_pending          integer,           -- the payer's pending requests, this one included
    max_pending            integer,           -- the per-payer cap applied
    max_batch_size         text,              -- settings for the nominal wait estimate, as stored
    batch_interval_seconds text,
    api_closed             boolean,
    mints_per_second       double precision,  -- measured throughput (0012, 0015), all NULL
    confirm_seconds        double precision,  -- without recent batches
    mints_per_batch        double precision,
    batch_period_seconds   double precision
);
CREATE FUNCTION mintq_enqueue(p_payer text, p_payment_type text, p_default_max_pending integer)
RETURNS mintq_enqueued
LANGUAGE plpgsql
SECURITY DEFINER
SET jit = off
SET enable_seqscan = off
SET plan_cache_mode = force_generic_plan
SET mintq.enqueue = 'on'
AS $$
DECLARE
    answer mintq_enqueued;
    measured boolean;
    cursor_at bigint;
    ticket bigint;
    joined boolean;
BEGIN
    SELECT coalesce(s.max_pending_per_payer, p_default_max_pending), s.max_batch_size,
           s.batch_interval_seconds, s.api_closed, c.claimed_through, t.mints_per_second,
           t.confirm_seconds, t.mints_per_batch, t.batch_period_seconds,
           t.measured_at > now() - make_interval(secs => t.window_seconds)
      INTO answer.max_pending, answer.max_batch_size, answer.batch_interval_seconds, answer.api_closed,
           cursor_at, answer.mints_per_second, answer.confirm_seconds, answer.mints_per_batch,
           answer.batch_period_seconds, measured
      FROM enqueue_settings s, queue_cursor c, mint_throughput t;
    IF measured IS NOT TRUE THEN  -- no batch confirmed within the window: no measurement
        answer.mints_per_second := NULL;
        answer.confirm_seconds := NULL;
        answer.mints_per_batch := NULL;
        answer.batch_period_seconds := NULL;
    END IF;
    IF answer.api_closed THEN
        RETURN answer;
    END IF;
    IF answer.max_pending > 0 THEN
        INSERT INTO payer_pending AS p (payer_address, pending_count) VALUES (p_payer, 1)
        ON CONFLICT (payer_address) DO UPDATE SET pending_count = p.pending_count + 1
         WHERE p.pending_count < answer.max_pending
        RETURNING p.pending_count, p.xmax = 0 INTO answer.payer_pending, joined;
    END IF;
    IF answer.payer_pending IS NULL THEN  -- at the cap: id stays NULL
        answer.payer_pending := coalesce(
            (SELECT p.pending_count FROM payer_pending p WHERE p.payer_address = p_payer), 0);
        RETURN answer;
    END IF;
    ticket := nextval('mint_queue_position_seq');
    -- mintq_queue_position(ticket), inlined (a call costs about what the INSERT does).
    answer.queue_position := 1 + greatest(0, ticket - cursor_at - 1);
    IF cursor_at > 0 THEN
        answer.queue_position := answer.queue_position
            + (SELECT count(*) FROM mint_queue r
                WHERE r.status = 'pending' AND r.queue_position < least(ticket, cursor_at + 1));
    END IF;
    INSERT INTO mint_queue AS m (queue_position, enqueue_position, payer_address, payment_type)
    VALUES (ticket, answer.queue_position, p_payer, p_payment_type)
    RETURNING m.id, m.created_at INTO answer.id, answer.created_at;
    UPDATE queue_counts c
       SET pending = c.pending + 1, payers_pending = c.payers_pending + joined::integer
     WHERE c.shard = pg_backend_pid() % 64;
    RETURN answer;
END;
$$;
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION mintq_enqueue(text, text, integer) SET search_path = %I, pg_temp',
                   current_schema());
END;
$$;

ANALYZE queue_counts;
