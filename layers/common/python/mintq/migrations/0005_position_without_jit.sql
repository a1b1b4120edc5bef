-- The place-in-line function as PL/pgSQL with JIT off. As a SQL function over an
-- unanalysed queue_cursor the planner guessed thousands of cursor rows, which pushed
-- each call over the JIT threshold: 35-90 ms of compilation for 0.03 ms of work.
CREATE OR REPLACE FUNCTION mintq_queue_position(ticket bigint) RETURNS bigint
LANGUAGE plpgsql STABLE
SET jit = off
AS $$
DECLARE
    cursor_at bigint;
    requeued  bigint;
BEGIN
    SELECT claimed_through INTO cursor_at FROM queue_cursor;
    -- Requeued requests still waiting below the cursor: few, found through the partial index.
    SELECT count(*) INTO requeued FROM mint_queue
     WHERE status = 'pending' AND queue_position < least(ticket, cursor_at + 1);
    RETURN 1 + requeued + greatest(0, ticket - cursor_at - 1);
END;
$$;

ANALYZE queue_cursor;

-- The same holds for the counter triggers on every enqueue and claim: small statements
-- whose estimates over unanalysed tables would otherwise pay for JIT compilation.
ALTER FUNCTION mintq_apply_counts(jsonb, jsonb) SET jit = off;
ALTER FUNCTION mint_queue_count_insert() SET jit = off;
ALTER FUNCTION mint_queue_count_update() SET jit = off;
ALTER FUNCTION mint_queue_count_delete() SET jit = off;
ANALYZE queue_counters;
ANALYZE system_settings;
