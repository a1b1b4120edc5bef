-- The wait estimate counts whole batches: a request is minted when the batch that carries it
-- confirms, so everyone in one batch waits the same, and a rate alone (position / mints per
-- second) overstates the wait of a request at the end of a batch by up to a batch's worth of
-- time, and at low traffic measures arrivals, not departures. The measurement therefore also
-- keeps the largest batch confirmed in the window (the size batches reach when the line is
-- long, which is when a place in line matters) and the mean time between two confirmations
-- (how often a batch leaves, whatever its size).
ALTER TABLE mint_throughput
    ADD COLUMN mints_per_batch double precision,        -- NULL until a batch confirms
    ADD COLUMN batch_period_seconds double precision;   -- NULL until two batches have confirmed

CREATE OR REPLACE FUNCTION mintq_measure_throughput() RETURNS trigger
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
    -- Rate: see migration 0012 (mints after the window's first confirmation over the time since).
    UPDATE mint_throughput t
       SET (mints_per_second, confirm_seconds, mints_per_batch, batch_period_seconds, measured_at) = (
           SELECT CASE WHEN count(*) >= 2 THEN
                      (sum(b.mint_count) - (array_agg(b.mint_count ORDER BY b.confirmed_at, b.id))[1])
                      / greatest(1.0, extract(epoch FROM max(b.confirmed_at) - min(b.confirmed_at)))
                  END,
                  avg(greatest(0.0, extract(epoch FROM b.confirmed_at - coalesce(b.sent_at, b.created_at)))),
                  max(b.mint_count),
                  -- The same span, at least a second (batches mined in one block), over the gaps.
                  CASE WHEN count(*) >= 2 THEN
                      greatest(1.0, extract(epoch FROM max(b.confirmed_at) - min(b.confirmed_at)))
                      / (count(*) - 1)
                  END,
                  now()
             FROM batch_mints b
            WHERE b.chain_id = NEW.chain_id AND b.token_address = NEW.token_address
              AND b.status = 'confirmed' AND b.confirmed_at > window_start);
    RETURN NULL;
END;
$$;
