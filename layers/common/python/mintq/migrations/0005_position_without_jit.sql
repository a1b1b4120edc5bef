-- The place-in-line function as PL/pgSQL with JIT off. As a SQL function over an
-- unanalysed queue_cursor the planner guessed thousands of cursor rows, which pushed
-- each call over the JIT threshold: 35-90 ms of compilation for 0.03 ms of work.
CREATE OR REPLACE FUNCTION mintq_queue_position(ticket bigint) RETURNS bigint
LANGUAGE plpgsql STABLE
SET jit = off
-- A cached generic plan cannot see how narrow the ticket range is and may scan the table;
-- planning each call with its values keeps it on the partial index.
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    cursor_at bigint;
    requeued  bigint := 0;
BEGIN
    SELECT claimed_through INTO cursor_at FROM queue_cursor;
    IF cursor_at > 0 THEN
        -- Requeued requests still waiting below the cursor: few, found through the partial index.
        SELECT count(*) INTO requeued FROM mint_queue
         WHERE status = 'pending' AND queue_position < least(ticket, cursor_at + 1);
    END IF;
    RETURN 1 + requeued + greatest(0, ticket - cursor_at - 1);
END;
$$;

ANALYZE queue_cursor;

-- Per-payer counts one payer at a time, by primary key: set-based joins against
-- jsonb_each_text() could be planned as sequential scans of payer_pending before the table
-- was first analysed, making every enqueue O(payers).
CREATE OR REPLACE FUNCTION mintq_apply_counts(deltas jsonb, payer_deltas jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    my_shard smallint := pg_backend_pid() % 16;
    payers_delta bigint := 0;
    entry record;
    remaining integer;
BEGIN
    -- Payer rows first, in key order, then counters: one lock order for every writer.
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
    IF payers_delta <> 0 THEN
        deltas := coalesce(deltas, '{}'::jsonb) || jsonb_build_object('payers_pending', payers_delta);
    END IF;
    FOR entry IN SELECT key AS counter, value::bigint AS delta
                   FROM jsonb_each_text(coalesce(deltas, '{}'::jsonb)) ORDER BY key LOOP
        IF entry.delta <> 0 THEN
            UPDATE queue_counters SET n = n + entry.delta
             WHERE counter = entry.counter AND shard = my_shard;
        END IF;
    END LOOP;
END;
$$;

-- The same holds for the counter triggers on every enqueue and claim: small statements
-- whose estimates over unanalysed tables would otherwise pay for JIT compilation.
ALTER FUNCTION mintq_apply_counts(jsonb, jsonb) SET jit = off;
ALTER FUNCTION mint_queue_count_insert() SET jit = off;
ALTER FUNCTION mint_queue_count_update() SET jit = off;
ALTER FUNCTION mint_queue_count_delete() SET jit = off;
ANALYZE queue_counters;
ANALYZE system_settings;
