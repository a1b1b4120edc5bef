-- Measured throughput for the wait estimate: mints confirmed per second over the last five
-- minutes, and how long a batch took from broadcast to receipt. One row, rewritten as each
-- batch confirms (by the worker's own transaction, through the trigger below), so that an
-- enqueue reads a single row instead of aggregating batch history on every request.
CREATE TABLE mint_throughput (
    singleton        boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    mints_per_second double precision,          -- NULL until two batches have confirmed
    confirm_seconds  double precision,          -- mean broadcast-to-receipt time, same window
    window_seconds   double precision NOT NULL DEFAULT 300,
    measured_at      timestamptz                -- when the last confirmed batch updated it
);
INSERT INTO mint_throughput DEFAULT VALUES;

-- The window is the last window_seconds of confirmed batches of the confirming batch's
-- token. Rate = the mints confirmed after the window's first confirmation, divided by the
-- time since it: with a batch every P seconds that is exactly batch size / P, whatever the
-- number of batches, where counting from the first broadcast would overstate it (k batches
-- in (k-1)P seconds). One batch alone measures no rate (NULL: the nominal estimate stands).
-- The span is at least one second, so batches mined in one block cannot claim thousands of
-- mints per second.
CREATE FUNCTION mintq_measure_throughput() RETURNS trigger
LANGUAGE plpgsql
SET jit = off
AS $$
DECLARE
    window_start timestamptz;
BEGIN
    -- Never wait for the row: another signer's worker may hold it in a transaction that is
    -- slow or stuck, and a confirmation must not queue behind it. Skipping is harmless: the
    -- holder writes a measurement when it commits, and the next confirmation writes one anyway.
    SELECT now() - make_interval(secs => t.window_seconds) INTO window_start
      FROM mint_throughput t FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    UPDATE mint_throughput t
       SET (mints_per_second, confirm_seconds, measured_at) = (
           SELECT CASE WHEN count(*) >= 2 THEN
                      (sum(b.mint_count) - (array_agg(b.mint_count ORDER BY b.confirmed_at, b.id))[1])
                      / greatest(1.0, extract(epoch FROM max(b.confirmed_at) - min(b.confirmed_at)))
                  END,
                  avg(greatest(0.0, extract(epoch FROM b.confirmed_at - coalesce(b.sent_at, b.created_at)))),
                  now()
             FROM batch_mints b
            WHERE b.chain_id = NEW.chain_id AND b.token_address = NEW.token_address
              AND b.status = 'confirmed' AND b.confirmed_at > window_start);
    RETURN NULL;
END;
$$;

CREATE TRIGGER batch_mints_measure_throughput
    AFTER UPDATE OF status ON batch_mints
    FOR EACH ROW
    WHEN (NEW.status = 'confirmed' AND OLD.status IS DISTINCT FROM 'confirmed')
    EXECUTE FUNCTION mintq_measure_throughput();
