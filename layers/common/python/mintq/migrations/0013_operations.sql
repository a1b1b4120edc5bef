-- Operators' controls (issue 13): pause the worker, close the API, and a retention period
-- for finished queue rows. Settings are rows like any other, read by the worker every cycle.
INSERT INTO system_settings (key, value, description) VALUES
    ('worker_paused', 'false',
     'true: the batch worker claims nothing new but still finishes what is in flight (mintq pause)'),
    ('api_closed', 'false',
     'true: POST /mint answers 503 with Retry-After (mintq pause --close-api)'),
    ('retention_days', '30',
     'Completed and failed queue rows older than this are deleted daily (mint_history is kept)')
ON CONFLICT (key) DO NOTHING;

-- Enqueue learns whether the API is closed in the same call that reads its other settings,
-- so a closed API costs no extra round trip and an open one no extra query.
DROP FUNCTION mintq_enqueue(text, text, integer);
CREATE FUNCTION mintq_enqueue(p_payer text, p_payment_type text, p_default_max_pending integer)
RETURNS TABLE (id uuid, queue_position bigint, created_at timestamptz, payer_pending integer,
               max_pending integer, max_batch_size text, batch_interval_seconds text,
               api_closed boolean)
LANGUAGE plpgsql
SET jit = off
AS $$
DECLARE
    ticket bigint;
BEGIN
    SELECT coalesce(max(CASE WHEN s.key = 'max_pending_per_payer' AND s.value ~ '^[0-9]{1,9}$'
                             THEN s.value::int END), p_default_max_pending),
           max(CASE WHEN s.key = 'max_batch_size' THEN s.value END),
           max(CASE WHEN s.key = 'batch_interval_seconds' THEN s.value END),
           coalesce(bool_or(s.key = 'api_closed' AND lower(trim(s.value)) IN ('true', 'on', 'yes', '1')),
                    false)
      INTO max_pending, max_batch_size, batch_interval_seconds, api_closed
      FROM system_settings s
     WHERE s.key IN ('max_pending_per_payer', 'max_batch_size', 'batch_interval_seconds', 'api_closed');
    IF api_closed THEN
        RETURN NEXT;
        RETURN;
    END IF;
    payer_pending := coalesce(
        (SELECT p.pending_count FROM payer_pending p WHERE p.payer_address = p_payer), 0);
    IF payer_pending < max_pending THEN
        ticket := nextval('mint_queue_position_seq');
        INSERT INTO mint_queue AS m (queue_position, enqueue_position, payer_address, payment_type)
        VALUES (ticket, mintq_queue_position(ticket), p_payer, p_payment_type)
        RETURNING m.id, m.enqueue_position, m.created_at INTO id, queue_position, created_at;
    END IF;
    RETURN NEXT;
END;
$$;

-- Retention (query delete_expired_queue_rows) deletes finished rows oldest first, a few
-- thousand at a time; one partial index finds them without touching the live queue.
CREATE INDEX mint_queue_finished_idx ON mint_queue (processed_at)
    WHERE status IN ('completed', 'failed');
