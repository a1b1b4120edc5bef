-- Enqueue at close to the cost of a plain INSERT (issue 14). Measured with pgbench on the same
-- server, mintq_enqueue() reached 27-45 % of a plain INSERT ... RETURNING: the insert counter
-- trigger aggregated its transition table into jsonb and unpacked it again row by row in
-- PL/pgSQL, and the row fed seven indexes.

-- An enqueue holds its counter row's lock until it commits (a WAL flush): two enqueues whose
-- backends share a shard wait on each other. 64 shards rather than 16 make that rare at the
-- concurrency one database serves; queue_stats sums every shard, so other writers may keep
-- using the first 16.
INSERT INTO queue_counters (counter, shard)
SELECT c, s FROM unnest(ARRAY['pending', 'processing', 'completed', 'failed', 'payers_pending']) AS c,
                 generate_series(16, 63) AS s
ON CONFLICT DO NOTHING;

-- Counting an insert: two set-based statements over the transition table, no jsonb and no
-- per-counter loop. Still statement-level, so a bulk INSERT ... SELECT touches each counter row
-- once rather than once per row (updating one row a million times in one transaction walks an
-- ever longer version chain). Lock order as everywhere else: payer rows in key order, then
-- counter rows in key order ('payers_pending' < 'pending' < 'processing').
CREATE OR REPLACE FUNCTION mint_queue_count_insert() RETURNS trigger
LANGUAGE plpgsql
SET jit = off
AS $$
DECLARE
    my_shard smallint := pg_backend_pid() % 64;
    joined bigint;
    entry record;
BEGIN
    WITH up AS (
        INSERT INTO payer_pending AS p (payer_address, pending_count)
        SELECT payer_address, count(*) FROM new_rows WHERE status = 'pending'
         GROUP BY payer_address ORDER BY payer_address
        ON CONFLICT (payer_address) DO UPDATE SET pending_count = p.pending_count + EXCLUDED.pending_count
        RETURNING (xmax = 0) AS inserted
    )
    SELECT count(*) FILTER (WHERE inserted) INTO joined FROM up;
    -- One single-row UPDATE per counter: a concurrent writer's newer version of the row is then
    -- re-read and added to, where an UPDATE ... FROM (a subquery) could skip the row on recheck.
    FOR entry IN SELECT 'payers_pending' AS counter, joined AS n WHERE joined > 0
                 UNION ALL
                 SELECT status::text, count(*) FROM new_rows GROUP BY status
                 ORDER BY counter LOOP
        UPDATE queue_counters SET n = n + entry.n WHERE counter = entry.counter AND shard = my_shard;
    END LOOP;
    RETURN NULL;
END;
$$;
-- Re-pinned as 0010 pinned it: CREATE OR REPLACE keeps SECURITY DEFINER but not a SET list.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION mint_queue_count_insert() SECURITY DEFINER SET search_path = %I, pg_temp',
                   current_schema());
END;
$$;

-- The per-payer cap is read from payer_pending (mintq_enqueue, enqueue_paid_request); no query
-- looks up pending rows by payer in mint_queue any more, so this index only cost every insert.
DROP INDEX IF EXISTS mint_queue_payer_pending_idx;
-- The indexes that stay on mint_queue, and the query each serves:
--   mint_queue_pkey (id)                        queue_item, paid_request, every UPDATE by id
--   mint_queue_position_key (queue_position)    uniqueness of tickets (one place per ticket)
--   mint_queue_tx_hash_bytes32_key              one request per payment key (enqueue_paid_request)
--   mint_queue_payment_id_key (payment_id)      one request per payment (enqueue_paid_request)
--   mint_queue_pending_idx (pending, by ticket) claim_requests, mintq_queue_position, queue_stats
--   mint_queue_payer_idx (payer, created_at)    payer_requests (GET /queue/payer/{address})
--   mint_queue_batch_idx (processing, batch)    complete_batch, revert_batch, drop_batch (no entry
--                                               for a pending row)
--   mint_queue_failed_idx, mint_queue_finished_idx  operators' failed list, retention (no entry
--                                               for a pending row)
