-- mintq named queries. Each block starts with "-- name: <query>" and a one-line
-- description; parameters are %(named)s. Schema changes live in migrations/.

-- name: enqueue_request
-- Insert one request unless its payer is at the cap, and answer with its place in line,
-- the settings and the measured throughput the wait estimate needs and the payer's pending
-- count: one round trip, one function call (migrations 0006 and 0016 say why a function).
SELECT id, queue_position, max_pending, max_batch_size, batch_interval_seconds, api_closed,
       mints_per_second, confirm_seconds, mints_per_batch, batch_period_seconds
  FROM mintq_enqueue(%(payer)s, %(payment_type)s, %(default_max_pending)s);

-- name: queue_stats
-- The seed's statistics view (counters plus one index probe).
SELECT pending_count, processing_count, completed_count, failed_count, oldest_pending,
       unique_payers_pending
  FROM queue_stats;

-- name: recent_batches
-- The newest batches for the status page.
SELECT id, batch_tx_hash, mint_count, status, nonce, created_at, sent_at, confirmed_at,
       block_number, gas_used, error_message
  FROM batch_mints
 ORDER BY created_at DESC
 LIMIT %(limit)s;

-- name: measured_throughput
-- Over the recent window (migrations 0012, 0015): mints confirmed per second, one batch's
-- broadcast-to-receipt time, the largest batch and the mean time between two confirmations;
-- NULLs when no batch confirmed within it.
SELECT CASE WHEN measured_at > now() - make_interval(secs => window_seconds)
            THEN mints_per_second END AS mints_per_second,
       CASE WHEN measured_at > now() - make_interval(secs => window_seconds)
            THEN confirm_seconds END AS confirm_seconds,
       CASE WHEN measured_at > now() - make_interval(secs => window_seconds)
            THEN mints_per_batch END AS mints_per_batch,
       CASE WHEN measured_at > now() - make_interval(secs => window_seconds)
            THEN batch_period_seconds END AS batch_period_seconds,
       window_seconds
  FROM mint_throughput;

-- name: all_settings
-- Every runtime setting.
SELECT key, value FROM system_settings;

-- name: payer_requests
-- One payer's requests, newest first, after an optional keyset cursor.
SELECT id, status, created_at, processed_at, mint_tx_hash, error_message,
       CASE WHEN status = 'pending' THEN mintq_queue_position(queue_position)
            ELSE enqueue_position END AS queue_position
  FROM mint_queue
 WHERE payer_address = %(payer)s
   AND (%(before_created_at)s::timestamptz IS NULL
        OR (created_at, id) < (%(before_created_at)s::timestamptz, %(before_id)s::uuid))
 ORDER BY created_at DESC, id DESC
 LIMIT %(limit)s;

-- name: queue_item
-- One request's public fields (never authorization data or raw transactions).
SELECT id, payer_address, status, created_at, updated_at, processed_at, mint_tx_hash,
       error_message, retry_count, payment_type,
       CASE WHEN status = 'pending' THEN mintq_queue_position(queue_position)
            ELSE enqueue_position END AS queue_position,
       -- Why it still waits, when a worker refuses to send: for a claimed request its
       -- batch's signer, for a pending one the earliest refusal of any signer.
       (SELECT r.reason FROM worker_refusals r
         WHERE m.status = 'pending'
            OR (m.status = 'processing'
                AND (r.chain_id, r.signer_address) = (SELECT b.chain_id, b.signer_address
                                                        FROM batch_mints b WHERE b.id = m.batch_id))
         ORDER BY r.since LIMIT 1) AS waiting_reason
  FROM mint_queue m
 WHERE id = %(id)s;

-- name: archived_item
-- A completed request whose queue row was cleaned up, answered from mint_history.
SELECT queue_id AS id, payer_address, 'completed' AS status, created_at,
       completed_at AS updated_at, completed_at AS processed_at, mint_tx_hash,
       NULL::text AS error_message, 0 AS retry_count, payment_type, NULL::bigint AS queue_position,
       NULL::text AS waiting_reason
  FROM mint_history
 WHERE queue_id = %(id)s;

-- name: cycle_probe
-- Everything an idle batch cycle needs in one cheap query: settings, queue statistics,
-- and whether this signer has work (an unfinished batch or a pending request).
SELECT (SELECT jsonb_object_agg(key, value) FROM system_settings) AS settings,
       EXISTS (SELECT 1 FROM batch_mints
                WHERE chain_id = %(chain_id)s AND signer_address = %(signer)s
                  AND status IN ('signed', 'pending')) AS has_inflight,
       EXISTS (SELECT 1 FROM mint_queue WHERE status = 'pending') AS has_pending,
       EXISTS (SELECT 1 FROM worker_refusals
                WHERE chain_id = %(chain_id)s AND signer_address = %(signer)s) AS refusing,
       st.pending_count, st.processing_count, st.completed_count, st.failed_count,
       st.oldest_pending, st.unique_payers_pending
  FROM queue_stats st;

-- name: record_worker_refusal
-- A cycle of this signer's worker faulted: say why. ``since`` keeps the first cycle that
-- faulted for the same reason code.
INSERT INTO worker_refusals (chain_id, signer_address, code, reason)
VALUES (%(chain_id)s, %(signer)s, %(code)s, %(reason)s)
ON CONFLICT (chain_id, signer_address) DO UPDATE
   SET reason = EXCLUDED.reason, last_seen_at = now(), code = EXCLUDED.code,
       since = CASE WHEN worker_refusals.code = EXCLUDED.code THEN worker_refusals.since
                    ELSE now() END;

-- name: clear_worker_refusal
-- A cycle of this signer's worker went through: it no longer refuses.
DELETE FROM worker_refusals WHERE chain_id = %(chain_id)s AND signer_address = %(signer)s;

-- name: worker_refusals
-- Every signer whose worker currently refuses to send (one row per signer at most).
SELECT chain_id, signer_address, code, reason, since, last_seen_at
  FROM worker_refusals
 ORDER BY since, signer_address;

-- name: try_signer_lock
-- Session advisory lock per signer: one batch worker per wallet at a time. Taken only if this
-- statement runs on the backend the connection started on (%(backend_pid)s): through a
-- transaction pooler it would land on a shared backend, so own_session is false and no lock
-- is taken (one statement, so the check and the lock cannot run on different backends).
SELECT pg_backend_pid() = %(backend_pid)s AS own_session,
       CASE WHEN pg_backend_pid() = %(backend_pid)s
            THEN pg_try_advisory_lock(hashtextextended(%(lock_name)s, 0)) END AS locked;

-- name: release_signer_lock
-- Give the signer lock back before the connection is reused.
SELECT pg_advisory_unlock(hashtextextended(%(lock_name)s, 0)) AS unlocked;

-- name: claim_requests
-- Claim the head of the line for a new batch; SKIP LOCKED lets claimers never block
-- each other. The claim cursor moves in advance_claim_cursor, as the batch's transaction ends.
WITH picked AS (
    SELECT id FROM mint_queue
     WHERE status = 'pending'
     ORDER BY queue_position
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
)
UPDATE mint_queue m
   SET status = 'processing', batch_id = %(batch_id)s
  FROM picked
 WHERE m.id = picked.id
RETURNING m.id, m.payer_address, m.queue_position, m.retry_count;

-- name: advance_claim_cursor
-- Record how far the line has been claimed. The cursor is one row: run last in the claiming
-- transaction, so signers building batches in parallel wait on its lock only for the commit,
-- not for the simulation and signing in between.
UPDATE queue_cursor SET claimed_through = greatest(claimed_through, %(position)s);

-- name: release_requests
-- Put claimed requests back in line untouched (an operational fault, not theirs).
UPDATE mint_queue
   SET status = 'pending', batch_id = NULL
 WHERE id = ANY(%(ids)s::uuid[]) AND status = 'processing';

-- name: fail_requests
-- Fail requests for good with a reason (e.g. the token's supply is exhausted).
UPDATE mint_queue
   SET status = 'failed', error_message = %(reason)s, processed_at = now(), batch_id = NULL
 WHERE id = ANY(%(ids)s::uuid[]) AND status = 'processing';

-- name: insert_batch
-- Record a signed batch before it is broadcast (the write-ahead record).
INSERT INTO batch_mints (id, batch_tx_hash, mint_count, status, chain_id, signer_address,
                         token_address, nonce, gas_limit, max_fee_per_gas,
                         max_priority_fee_per_gas, amount_per_mint)
VALUES (%(id)s, %(tx_hash)s, %(mint_count)s, 'signed', %(chain_id)s, %(signer)s, %(token)s,
        %(nonce)s, %(gas_limit)s, %(max_fee_per_gas)s, %(max_priority_fee_per_gas)s,
        %(amount_per_mint)s);

-- name: insert_attempt
-- Record one signed transaction of a batch.
INSERT INTO batch_attempts (tx_hash, batch_id, attempt, raw_tx, max_fee_per_gas,
                            max_priority_fee_per_gas)
VALUES (%(tx_hash)s, %(batch_id)s, %(attempt)s, %(raw_tx)s, %(max_fee_per_gas)s,
        %(max_priority_fee_per_gas)s);

-- name: mark_batch_sent
-- The node accepted (or already knew) the batch's transaction.
UPDATE batch_mints
   SET status = 'pending', sent_at = coalesce(sent_at, now())
 WHERE id = %(id)s AND status = 'signed';

-- name: inflight_batches
-- This signer's unfinished batches (or just %(batch_id)s), oldest nonce first, with every
-- attempt (newest last). Fees stay JSON numbers: whole numbers of wei come back as integers.
SELECT b.id, b.nonce, b.status, b.batch_tx_hash, b.mint_count, b.created_at, b.sent_at,
       b.gas_limit, b.max_fee_per_gas, b.max_priority_fee_per_gas, b.amount_per_mint,
       coalesce(jsonb_agg(jsonb_build_object(
                    'tx_hash', a.tx_hash, 'raw_tx', a.raw_tx, 'attempt', a.attempt,
                    'max_fee_per_gas', a.max_fee_per_gas,
                    'max_priority_fee_per_gas', a.max_priority_fee_per_gas,
                    'age_seconds', extract(epoch FROM now() - a.created_at))
                  ORDER BY a.attempt) FILTER (WHERE a.tx_hash IS NOT NULL),
                '[]') AS attempts
  FROM batch_mints b
  LEFT JOIN batch_attempts a ON a.batch_id = b.id
 WHERE b.chain_id = %(chain_id)s AND b.signer_address = %(signer)s
   AND b.status IN ('signed', 'pending')
   AND (%(batch_id)s::uuid IS NULL OR b.id = %(batch_id)s)
 GROUP BY b.id
 ORDER BY b.nonce;

-- name: inflight_mints
-- Mints of every signer's unfinished batches of a token: supply they will take when mined.
SELECT coalesce(sum(mint_count), 0) AS n FROM batch_mints
 WHERE chain_id = %(chain_id)s AND token_address = %(token)s AND status IN ('signed', 'pending');

-- name: highest_used_nonce
-- The highest nonce this signer's batches consumed on chain (confirmed or reverted).
SELECT max(nonce) AS nonce FROM batch_mints
 WHERE chain_id = %(chain_id)s AND signer_address = %(signer)s
   AND status IN ('confirmed', 'failed');

-- name: complete_batch
-- Mined with status 1: confirm the batch, complete its items and write their history,
-- all at once. Guarded by the batch's state, so finishing twice changes nothing.
WITH b AS (
    UPDATE batch_mints
       SET status = 'confirmed', batch_tx_hash = %(tx_hash)s, confirmed_at = now(),
           block_number = %(block_number)s, gas_used = %(gas_used)s,
           effective_gas_price = %(effective_gas_price)s, error_message = NULL
     WHERE id = %(batch_id)s AND status IN ('signed', 'pending')
    RETURNING id, amount_per_mint
), attempts AS (
    UPDATE batch_attempts
       SET status = CASE WHEN tx_hash = %(tx_hash)s THEN 'mined'::attempt_status
                         ELSE 'replaced'::attempt_status END
     WHERE batch_id = (SELECT id FROM b)
), items AS (
    UPDATE mint_queue m
       SET status = 'completed', processed_at = now(), mint_tx_hash = %(tx_hash)s,
           error_message = NULL
     WHERE m.batch_id = (SELECT id FROM b) AND m.status = 'processing'
    RETURNING m.id, m.payer_address, m.payment_tx_hash, m.tx_hash_bytes32, m.payment_type,
              m.created_at
), history AS (
    INSERT INTO mint_history (queue_id, payer_address, payment_tx_hash, tx_hash_bytes32,
                              mint_tx_hash, amount, block_number, payment_type, batch_id,
                              created_at)
    SELECT i.id, i.payer_address, i.payment_tx_hash, i.tx_hash_bytes32, %(tx_hash)s,
           (SELECT amount_per_mint::text FROM b), %(block_number)s, i.payment_type,
           %(batch_id)s, i.created_at
      FROM items i
    ON CONFLICT (queue_id) DO NOTHING
    RETURNING queue_id
)
SELECT (SELECT count(*) FROM b) AS batches, (SELECT count(*) FROM items) AS completed,
       (SELECT count(*) FROM history) AS archived;

-- name: revert_batch
-- Mined with status 0: the batch failed; its items are charged one attempt each.
WITH b AS (
    UPDATE batch_mints
       SET status = 'failed', batch_tx_hash = %(tx_hash)s, confirmed_at = now(),
           block_number = %(block_number)s, gas_used = %(gas_used)s,
           effective_gas_price = %(effective_gas_price)s, error_message = %(reason)s
     WHERE id = %(batch_id)s AND status IN ('signed', 'pending')
    RETURNING id
), attempts AS (
    UPDATE batch_attempts
       SET status = CASE WHEN tx_hash = %(tx_hash)s THEN 'mined'::attempt_status
                         ELSE 'replaced'::attempt_status END
     WHERE batch_id = (SELECT id FROM b)
), items AS (
    UPDATE mint_queue
       SET retry_count = retry_count + 1,
           error_message = %(reason)s,
           status = CASE WHEN retry_count + 1 >= %(max_attempts)s THEN 'failed'::mint_status
                         ELSE 'pending'::mint_status END,
           processed_at = CASE WHEN retry_count + 1 >= %(max_attempts)s THEN now() END
     WHERE batch_id = (SELECT id FROM b) AND status = 'processing'
    RETURNING status
)
SELECT (SELECT count(*) FROM b) AS batches,
       count(*) FILTER (WHERE status = 'pending') AS requeued,
       count(*) FILTER (WHERE status = 'failed') AS failed
  FROM items;

-- name: drop_batch
-- The batch's nonce was provably used by another transaction: none of its attempts can
-- ever be mined, so its items go back in line without being charged.
WITH b AS (
    UPDATE batch_mints
       SET status = 'dropped', error_message = %(reason)s
     WHERE id = %(batch_id)s AND status IN ('signed', 'pending')
    RETURNING id
)
UPDATE mint_queue
   SET status = 'pending', batch_id = NULL
 WHERE batch_id = (SELECT id FROM b) AND status = 'processing';

-- name: batch_recipients
-- A batch's recipients in the order they were sent.
SELECT payer_address FROM mint_queue
 WHERE batch_id = %(batch_id)s AND status = 'processing'
 ORDER BY queue_position;

-- name: claim_idempotency_key
-- Take an idempotency key for this request; waits for a concurrent holder to finish.
INSERT INTO idempotency_keys (key, request_hash)
VALUES (%(key)s, %(request_hash)s)
ON CONFLICT (key) DO NOTHING
RETURNING key;

-- name: idempotent_response
-- The answer stored under a key (in a new statement, so a just-committed holder is seen).
SELECT request_hash, status_code, response FROM idempotency_keys WHERE key = %(key)s;

-- name: store_idempotent_response
-- Remember the answer given for a key, in the same transaction as the queued row.
UPDATE idempotency_keys
   SET queue_id = %(queue_id)s, status_code = %(status_code)s, response = %(response)s
 WHERE key = %(key)s;

-- name: prune_idempotency_keys
-- Forget up to %(limit)s idempotency keys older than the retention, oldest first.
DELETE FROM idempotency_keys
 WHERE key IN (SELECT key FROM idempotency_keys
                WHERE created_at < now() - make_interval(secs => %(retention_seconds)s)
                ORDER BY created_at
                LIMIT %(limit)s
                FOR UPDATE SKIP LOCKED);

-- name: record_replacement
-- A replacement attempt at the batch's nonce, recorded before it is broadcast.
WITH a AS (
    INSERT INTO batch_attempts (tx_hash, batch_id, attempt, raw_tx, max_fee_per_gas,
                                max_priority_fee_per_gas)
    VALUES (%(tx_hash)s, %(batch_id)s, %(attempt)s, %(raw_tx)s, %(max_fee_per_gas)s,
            %(max_priority_fee_per_gas)s)
    RETURNING batch_id
)
UPDATE batch_mints
   SET batch_tx_hash = %(tx_hash)s, max_fee_per_gas = %(max_fee_per_gas)s,
       max_priority_fee_per_gas = %(max_priority_fee_per_gas)s
 WHERE id = (SELECT batch_id FROM a) AND status IN ('signed', 'pending');

-- name: recent_gas_per_mint
-- Gas per mint of this token's recent confirmed batches, to size the next batch.
SELECT sum(gas_used)::float8 / nullif(sum(mint_count), 0) AS per_mint
  FROM (SELECT gas_used, mint_count FROM batch_mints
         WHERE chain_id = %(chain_id)s AND token_address = %(token)s AND status = 'confirmed'
           AND gas_used IS NOT NULL
         ORDER BY confirmed_at DESC
         LIMIT 20) recent;

-- name: x402_admission
-- Before anyone is charged: the payer's open requests against the cap, and everything
-- that will consume supply (queued mints plus payments not yet settled or queued).
SELECT coalesce((SELECT pending_count FROM payer_pending WHERE payer_address = %(payer)s), 0)
         + (SELECT count(*) FROM payments
             WHERE payer_address = %(payer)s AND status IN ('settling', 'settlement_pending'))
         AS payer_open,
       coalesce((SELECT max(CASE WHEN value ~ '^[0-9]{1,9}$' THEN value::int END)
                   FROM system_settings WHERE key = 'max_pending_per_payer'),
                %(default_max_pending)s) AS max_pending,
       (SELECT pending_count + processing_count FROM queue_stats)
         + (SELECT count(*) FROM payments WHERE status IN ('settling', 'settlement_pending'))
         AS committed;

-- name: inflight_attempts
-- Every attempt of this token's unfinished batches: the admission looks up their receipts to
-- count mints the chain has taken but the worker has not recorded yet.
SELECT b.id AS batch_id, b.mint_count, a.tx_hash
  FROM batch_mints b
  JOIN batch_attempts a ON a.batch_id = b.id
 WHERE b.status IN ('signed', 'pending') AND lower(b.token_address) = lower(%(token)s)
 ORDER BY b.nonce, a.attempt
 LIMIT %(limit)s;

-- name: set_lock_timeout
-- Bound this transaction's lock waits by the time the request has left (milliseconds).
SELECT set_config('lock_timeout', %(ms)s, true);

-- name: lock_payment_admission
-- Serialise the last supply check with the payment record it admits (transaction-scoped).
SELECT pg_advisory_xact_lock(hashtextextended('mintq:x402:admission', 0));

-- name: find_payment
-- A payment by its authorization: the idempotency key of "one payment, one mint".
SELECT id, queue_id, status::text AS status, payer_address, signature_hash, settlement_tx_hash,
       error_reason, network, amount::text AS amount, x402_version,
       coalesce(lease_until > now(), false) AS leased
  FROM payments
 WHERE payer_address = %(payer)s AND auth_nonce = %(nonce)s;

-- name: record_payment
-- The durable record, committed before settlement; a concurrent twin gets nothing back.
INSERT INTO payments (payer_address, auth_nonce, x402_version, network, asset, pay_to, amount,
                      valid_before, signature_hash, payload, requirements, from_block, lease_until)
VALUES (%(payer)s, %(nonce)s, %(x402_version)s, %(network)s, %(asset)s, %(pay_to)s, %(amount)s,
        %(valid_before)s, %(signature_hash)s, %(payload)s, %(requirements)s, %(from_block)s,
        now() + make_interval(secs => %(lease_seconds)s))
ON CONFLICT (payer_address, auth_nonce) DO NOTHING
RETURNING id, queue_id;

-- name: mark_payment_settled
-- The transfer is on chain; guarded so that only one of the request and the worker wins.
UPDATE payments
   SET status = 'settled', settlement_tx_hash = coalesce(%(tx_hash)s, settlement_tx_hash),
       settled_at = now(), lease_until = NULL, error_reason = NULL
 WHERE id = %(id)s AND status IN ('settling', 'settlement_pending')
RETURNING id, queue_id, payer_address, settlement_tx_hash, network, asset, auth_nonce;

-- name: mark_payment_pending
-- The facilitator may have broadcast: the worker reconciles it on chain from now on.
UPDATE payments
   SET status = 'settlement_pending', settlement_tx_hash = coalesce(%(tx_hash)s, settlement_tx_hash),
       error_reason = %(reason)s, lease_until = NULL
 WHERE id = %(id)s AND status IN ('settling', 'settlement_pending');

-- name: mark_payment_failed
-- Never charged (refused at settlement, or expired unused on chain).
UPDATE payments
   SET status = 'failed', error_reason = %(reason)s, lease_until = NULL
 WHERE id = %(id)s AND status IN ('settling', 'settlement_pending')
RETURNING id;

-- name: forget_payment
-- The facilitator was never reached: drop the record so the same payment may be retried.
-- As the owner (0017), a settling record only; answers whether it was there to forget.
SELECT mintq_forget_payment(%(id)s) AS forgotten;

-- name: enqueue_paid_request
-- A settled payment's mint, in the caller's transaction, under the id the payment reserved.
-- No per-payer cap here: it was checked before the payer was charged.
WITH s AS (
    SELECT max(CASE WHEN key = 'max_batch_size' THEN value END) AS max_batch_size,
           max(CASE WHEN key = 'batch_interval_seconds' THEN value END) AS batch_interval_seconds
      FROM system_settings
     WHERE key IN ('max_batch_size', 'batch_interval_seconds')
), ticket AS (
    SELECT nextval('mint_queue_position_seq') AS t
), inserted AS (
    INSERT INTO mint_queue (id, queue_position, enqueue_position, payer_address, payment_type,
                            payment_id, payment_tx_hash, tx_hash_bytes32)
    SELECT %(id)s, t, mintq_queue_position(t), %(payer)s, %(payment_type)s, %(payment_id)s,
           %(payment_tx_hash)s, %(tx_hash_bytes32)s
      FROM ticket
    RETURNING id, enqueue_position
)
SELECT inserted.id, inserted.enqueue_position AS queue_position, s.max_batch_size,
       s.batch_interval_seconds, t.mints_per_second, t.confirm_seconds, t.mints_per_batch,
       t.batch_period_seconds
  FROM inserted CROSS JOIN s
  LEFT JOIN mint_throughput t ON t.measured_at > now() - make_interval(secs => t.window_seconds);

-- name: paid_request
-- The request a settled payment bought, for answering a replay with the same queueId.
SELECT m.id, m.payer_address, m.payment_type,
       CASE WHEN m.status = 'pending' THEN mintq_queue_position(m.queue_position)
            ELSE m.enqueue_position END AS queue_position,
       (SELECT value FROM system_settings WHERE key = 'max_batch_size') AS max_batch_size,
       (SELECT value FROM system_settings WHERE key = 'batch_interval_seconds')
         AS batch_interval_seconds,
       t.mints_per_second, t.confirm_seconds, t.mints_per_batch, t.batch_period_seconds
  FROM mint_queue m
  LEFT JOIN mint_throughput t ON t.measured_at > now() - make_interval(secs => t.window_seconds)
 WHERE m.id = %(queue_id)s;

-- name: unfinished_payments
-- Payments the worker reconciles on chain: pending ones, and ones whose request died
-- while settling (its lease ran out). Each is looked at most every few seconds.
SELECT id, queue_id, payer_address, auth_nonce, asset, pay_to, amount::text AS amount,
       valid_before, from_block, settlement_tx_hash, status::text AS status
  FROM payments
 WHERE (status = 'settlement_pending' OR (status = 'settling' AND lease_until < now()))
   AND (checked_at IS NULL OR checked_at < now() - make_interval(secs => %(min_interval)s))
 ORDER BY created_at
 LIMIT %(limit)s;

-- name: touch_payment_check
-- Remember when a payment was last reconciled (and that its outcome is still open).
UPDATE payments SET checked_at = now() WHERE id = %(id)s;

-- name: payment_by_queue_id
-- A paid request's payment, public fields only (never the signed payload).
SELECT queue_id, payer_address, status::text AS payment_status, settlement_tx_hash,
       amount::text AS payment_amount, error_reason, created_at, updated_at
  FROM payments
 WHERE queue_id = %(queue_id)s;

-- name: payments_for_queue_ids
-- Payment status and settlement transaction of several requests at once.
SELECT queue_id, status::text AS payment_status, settlement_tx_hash
  FROM payments
 WHERE queue_id = ANY(%(ids)s::uuid[]);

-- name: list_refunds_due
-- Operators: paid requests whose mint failed for good, oldest first.
SELECT payment_id, queue_id, payer_address, amount::text AS amount, asset, network,
       settlement_tx_hash, reason, failed_at
  FROM refunds_due
 ORDER BY failed_at
 LIMIT %(limit)s;

-- --- operators (the mintq command, retention) ---------------------------------------

-- name: api_closed
-- Whether POST /mint is closed by an operator (mintq pause --close-api).
SELECT coalesce(bool_or(lower(trim(value)) IN ('true', 'on', 'yes', '1')), false) AS closed
  FROM system_settings
 WHERE key = 'api_closed';

-- name: settings_listing
-- Every runtime setting with its description and when it last changed.
SELECT key, value, description, updated_at FROM system_settings ORDER BY key;

-- name: upsert_setting
-- Store one validated setting (the worker reads it on its next cycle).
INSERT INTO system_settings (key, value)
VALUES (%(key)s, %(value)s)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
RETURNING key, value, updated_at;

-- name: delete_expired_queue_rows
-- Retention: delete up to %(limit)s completed and failed queue rows finished more than
-- %(retention_seconds)s ago, oldest first. Completed mints stay in mint_history; a paid
-- request that failed stays (it is listed in refunds_due until someone refunds it). A
-- function run as the owner (migration 0010): the worker's role may not DELETE requests.
-- One row per deleted request, so the row count is the number deleted.
SELECT id FROM mintq_delete_expired_queue_rows(%(retention_seconds)s::float8, %(limit)s::integer) AS id;

-- name: count_expired_queue_rows
-- How many rows retention would delete now (mintq cleanup --dry-run).
SELECT count(*) FILTER (WHERE status = 'completed') AS completed,
       count(*) FILTER (WHERE status = 'failed') AS failed
  FROM mint_queue
 WHERE status IN ('completed', 'failed')
   AND processed_at < now() - make_interval(secs => %(retention_seconds)s)
   AND (status = 'completed' OR payment_id IS NULL);

-- name: drain_rate
-- Mints confirmed over the last %(window_seconds)s (all tokens and signers of this database).
SELECT coalesce(sum(mint_count), 0)::bigint AS mints, count(*) AS batches,
       min(confirmed_at) AS first_confirmed_at, max(confirmed_at) AS last_confirmed_at
  FROM batch_mints
 WHERE status = 'confirmed'
   AND created_at > now() - make_interval(secs => %(window_seconds)s) - interval '1 hour'
   AND confirmed_at > now() - make_interval(secs => %(window_seconds)s);

-- name: inflight_by_signer
-- Every unfinished batch of every signer, with its latest attempt's fees.
SELECT b.id, b.chain_id, b.signer_address, b.nonce, b.status::text AS status, b.mint_count,
       extract(epoch FROM now() - b.created_at)::float8 AS age_seconds,
       count(a.tx_hash) AS attempts,
       (array_agg(a.max_fee_per_gas::text ORDER BY a.attempt DESC))[1] AS max_fee_per_gas,
       (array_agg(a.max_priority_fee_per_gas::text ORDER BY a.attempt DESC))[1]
         AS max_priority_fee_per_gas
  FROM batch_mints b
  LEFT JOIN batch_attempts a ON a.batch_id = b.id
 WHERE b.status IN ('signed', 'pending')
 GROUP BY b.id
 ORDER BY b.signer_address, b.nonce;

-- name: signer_nonces
-- Each signer's highest recorded nonce (any batch) and highest one known mined.
SELECT chain_id, signer_address, max(nonce) AS highest_recorded,
       max(nonce) FILTER (WHERE status IN ('confirmed', 'failed')) AS highest_mined
  FROM batch_mints
 GROUP BY chain_id, signer_address
 ORDER BY signer_address;

-- name: request_internals
-- What an operator sees of one request beyond the public item: its batch and tries.
SELECT m.id, m.batch_id, m.retry_count, m.payment_id, m.queue_position AS ticket,
       b.nonce AS batch_nonce, b.status::text AS batch_status, b.batch_tx_hash
  FROM mint_queue m
  LEFT JOIN batch_mints b ON b.id = m.batch_id
 WHERE m.id = %(id)s;

-- name: retryable_failed_requests
-- Failed requests an operator may put back in line, locked until the transaction ends:
-- never a paid one (it is listed in refunds_due), never one failed for exhausted supply
-- unless %(force)s.
SELECT id, payer_address, error_message, processed_at, retry_count
  FROM mint_queue
 WHERE status = 'failed'
   AND payment_id IS NULL
   AND (%(since)s::timestamptz IS NULL OR processed_at >= %(since)s::timestamptz)
   AND (%(reason_like)s::text IS NULL OR error_message ILIKE %(reason_like)s::text)
   AND (%(force)s OR coalesce(error_message, '') NOT ILIKE 'max supply reached%%')
 ORDER BY processed_at, id
   FOR UPDATE;

-- name: requeue_failed_requests
-- Put failed requests back at the end of the line with a fresh ticket and no tries used.
UPDATE mint_queue
   SET status = 'pending', error_message = NULL, processed_at = NULL, batch_id = NULL,
       retry_count = 0, queue_position = nextval('mint_queue_position_seq')
 WHERE id = ANY(%(ids)s::uuid[]) AND status = 'failed' AND payment_id IS NULL
RETURNING id;

-- name: batch_detail
-- One batch by id, or by signer and nonce, with its attempts (never the raw bytes). Wei as text
-- throughout, the batch's and its attempts' alike: exact for any reader of the operators' JSON.
SELECT b.id, b.chain_id, b.signer_address, b.token_address, b.nonce, b.status::text AS status,
       b.mint_count, b.batch_tx_hash, b.gas_limit, b.gas_used, b.block_number,
       b.max_fee_per_gas::text AS max_fee_per_gas,
       b.max_priority_fee_per_gas::text AS max_priority_fee_per_gas,
       b.effective_gas_price::text AS effective_gas_price, b.error_message,
       b.created_at, b.sent_at, b.confirmed_at,
       coalesce(jsonb_agg(jsonb_build_object(
                    'attempt', a.attempt, 'tx_hash', a.tx_hash, 'status', a.status,
                    'max_fee_per_gas', a.max_fee_per_gas::text,
                    'max_priority_fee_per_gas', a.max_priority_fee_per_gas::text,
                    'created_at', a.created_at) ORDER BY a.attempt)
                FILTER (WHERE a.tx_hash IS NOT NULL), '[]') AS attempts
  FROM batch_mints b
  LEFT JOIN batch_attempts a ON a.batch_id = b.id
 WHERE (%(id)s::uuid IS NOT NULL AND b.id = %(id)s::uuid)
    OR (%(id)s::uuid IS NULL AND b.nonce = %(nonce)s
        AND (%(signer)s::text IS NULL OR b.signer_address = %(signer)s::text))
 GROUP BY b.id
 ORDER BY b.created_at DESC;

-- name: batch_listing
-- The newest batches, optionally of one status.
SELECT id, signer_address, nonce, status::text AS status, mint_count, batch_tx_hash,
       gas_used, created_at, confirmed_at, error_message
  FROM batch_mints
 WHERE %(status)s::text IS NULL OR status::text = %(status)s::text
 ORDER BY created_at DESC
 LIMIT %(limit)s;

-- name: replica_lag
-- Seconds a read replica's data may be behind its primary: 0 on a primary or a replica that
-- has replayed everything it received, else the age of the last transaction it replayed.
SELECT CASE WHEN NOT pg_is_in_recovery() THEN 0
            WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0
            ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0)
       END::float8 AS seconds;
