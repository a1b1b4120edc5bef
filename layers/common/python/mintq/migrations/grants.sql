-- What mintq_api and mintq_worker may do, object by object (migration 0010 made the roles).
-- Re-applied by migrations.apply() after every run, in one transaction, so it is always the
-- whole truth: everything is revoked first, then granted again as written here. Every table,
-- view, sequence and function of the schema is classified in tests/integration/test_roles.py.

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM mintq_api, mintq_worker;  -- views too; columns with them
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM mintq_api, mintq_worker;
-- mintq's own functions only: an extension's (pg_stat_statements and the like may live in
-- public) keep what their extension grants.
DO $$
DECLARE
    fn regprocedure;
BEGIN
    FOR fn IN SELECT p.oid::regprocedure FROM pg_proc p
               WHERE p.pronamespace = 'public'::regnamespace
                 AND NOT EXISTS (SELECT 1 FROM pg_depend d
                                  WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                                    AND d.deptype = 'e') LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC, mintq_api, mintq_worker', fn);
    END LOOP;
END;
$$;
GRANT USAGE ON SCHEMA public TO mintq_api, mintq_worker;

-- Deliberately granted to neither role: queue_counts (the counters, written by the owner's
-- triggers and mintq_enqueue, read through queue_stats) and enqueue_settings (mirrored from
-- system_settings by a trigger, read by mintq_enqueue, which runs as the owner).

-- --- mintq_api: POST /mint (free and x402) and GET /queue/... --------------------------------
GRANT EXECUTE ON FUNCTION mintq_enqueue(text, text, integer) TO mintq_api;
GRANT EXECUTE ON FUNCTION mintq_queue_position(bigint) TO mintq_api;
GRANT USAGE ON SEQUENCE mint_queue_position_seq TO mintq_api;  -- a paid request's ticket
GRANT SELECT ON mint_queue, mint_history, batch_mints, system_settings, queue_cursor, payer_pending,
                queue_stats, payments, idempotency_keys, worker_refusals, mint_throughput TO mintq_api;
-- x402 admission counts mints of in-flight batches by their attempts' receipts; never the
-- signed raw transactions.
GRANT SELECT (batch_id, tx_hash, attempt) ON batch_attempts TO mintq_api;
-- New requests only, pending, with the columns enqueue_request / enqueue_paid_request write;
-- status, batch, retries and results are the worker's.
GRANT INSERT (id, queue_position, enqueue_position, payer_address, payment_type, payment_id,
              payment_tx_hash, tx_hash_bytes32) ON mint_queue TO mintq_api;
GRANT INSERT (key, request_hash) ON idempotency_keys TO mintq_api;
GRANT UPDATE (queue_id, status_code, response) ON idempotency_keys TO mintq_api;
-- x402: the durable record before settlement and its outcome; forgetting one the facilitator
-- never saw goes through mintq_forget_payment (0017: settling rows only), never a DELETE.
GRANT INSERT (payer_address, auth_nonce, x402_version, network, asset, pay_to, amount, valid_before,
              signature_hash, payload, requirements, from_block, lease_until) ON payments TO mintq_api;
GRANT UPDATE (status, settlement_tx_hash, settled_at, lease_until, error_reason) ON payments TO mintq_api;
GRANT EXECUTE ON FUNCTION mintq_forget_payment(uuid) TO mintq_api;

-- --- mintq_worker: the batch worker, the payment reconciler, the key pruner, retention -------
GRANT EXECUTE ON FUNCTION mintq_queue_position(bigint) TO mintq_worker;
GRANT USAGE ON SEQUENCE mint_queue_position_seq TO mintq_worker;  -- a reconciled payment's ticket
GRANT USAGE ON SEQUENCE mint_history_id_seq TO mintq_worker;
GRANT SELECT ON mint_queue, mint_history, batch_mints, batch_attempts, system_settings, queue_cursor,
                queue_stats, payments, idempotency_keys, worker_refusals TO mintq_worker;
-- Finished rows past retention only (see the function in 0010).
GRANT EXECUTE ON FUNCTION mintq_delete_expired_queue_rows(double precision, integer) TO mintq_worker;
-- Why a signer's worker is not sending (0009): one row per refusing signer.
GRANT INSERT, DELETE ON worker_refusals TO mintq_worker;
GRANT UPDATE (code, reason, since, last_seen_at) ON worker_refusals TO mintq_worker;
-- The measured throughput (0012) is rewritten by a trigger in the worker's own transaction
-- as each batch confirms; the wait estimates read it.
GRANT SELECT ON mint_throughput TO mintq_worker;
GRANT UPDATE (mints_per_second, confirm_seconds, mints_per_batch, batch_period_seconds, measured_at) ON mint_throughput TO mintq_worker;
GRANT UPDATE (status, batch_id, retry_count, error_message, processed_at, mint_tx_hash)
    ON mint_queue TO mintq_worker;
-- A reconciled payment's mint (enqueue_paid_request), as the request would have queued it.
GRANT INSERT (id, queue_position, enqueue_position, payer_address, payment_type, payment_id,
              payment_tx_hash, tx_hash_bytes32) ON mint_queue TO mintq_worker;
GRANT UPDATE (claimed_through) ON queue_cursor TO mintq_worker;
GRANT INSERT ON batch_mints, batch_attempts, mint_history TO mintq_worker;
GRANT UPDATE (status, batch_tx_hash, sent_at, confirmed_at, block_number, gas_used, effective_gas_price,
              error_message, max_fee_per_gas, max_priority_fee_per_gas) ON batch_mints TO mintq_worker;
GRANT UPDATE (status) ON batch_attempts TO mintq_worker;
GRANT UPDATE (status, settlement_tx_hash, settled_at, lease_until, error_reason, checked_at)
    ON payments TO mintq_worker;
-- Pruning: DELETE, plus UPDATE on one column because its SELECT ... FOR UPDATE SKIP LOCKED
-- locks the rows it deletes (row locks need UPDATE rights on some column).
GRANT DELETE ON idempotency_keys TO mintq_worker;
GRANT UPDATE (created_at) ON idempotency_keys TO mintq_worker;
