-- Least-privilege group roles. Deployments create one LOGIN user per function and make it a
-- member (README, "Database logins"):
--   mintq_api     the enqueue and status functions: enqueue, x402 payment records, status reads;
--   mintq_worker  the batch worker with its housekeeping (payment reconciler, key pruner);
--   the owner     whoever runs the migrations owns every object and alone can change the schema
--                 (neither group has CREATE on the schema nor owns anything).
--
-- Roles are cluster-wide while grants are per database: the roles are created only if missing
-- (several databases of one server may migrate at once, so losing that race is fine), and the
-- grants below run in every database. Each object's grants are a decision, checked by
-- tests/integration/test_roles.py: A MIGRATION THAT ADDS A TABLE, VIEW, SEQUENCE OR FUNCTION
-- MUST GRANT (OR DELIBERATELY NOT GRANT) IT TO BOTH ROLES AND CLASSIFY IT THERE.
DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['mintq_api', 'mintq_worker'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', name);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- another database's migration created it just now
            END;
        END IF;
    END LOOP;
END;
$$;

-- Functions are executable by PUBLIC unless revoked; here nothing is, unless granted below.
-- The same holds for functions later migrations create (default privileges of the owner).
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC;
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
-- PostgreSQL before 15 lets PUBLIC create objects in schema public.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO mintq_api, mintq_worker;

-- The queue counters are kept by statement triggers on mint_queue. Run as the owner, the
-- triggers need no write rights on queue_counters or payer_pending for the roles, and neither
-- role may call mintq_apply_counts itself (it could skew every count). A trigger function
-- cannot be called other than by its trigger. search_path is pinned, as for any SECURITY
-- DEFINER function, to this schema with pg_temp last.
DO $$
DECLARE
    fn text;
BEGIN
    FOREACH fn IN ARRAY ARRAY['mint_queue_count_insert()', 'mint_queue_count_update()',
                              'mint_queue_count_delete()', 'mint_queue_count_truncate()'] LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = %I, pg_temp',
                       fn, current_schema());
    END LOOP;
END;
$$;

-- --- mintq_api: POST /mint (free and x402) and GET /queue/... --------------------------------
GRANT EXECUTE ON FUNCTION mintq_enqueue(text, text, integer) TO mintq_api;
GRANT EXECUTE ON FUNCTION mintq_queue_position(bigint) TO mintq_api;
GRANT USAGE ON SEQUENCE mint_queue_position_seq TO mintq_api;  -- a paid request's ticket
GRANT SELECT ON mint_queue, mint_history, batch_mints, system_settings, queue_cursor, payer_pending,
                queue_stats, payments, idempotency_keys TO mintq_api;
-- New requests only, pending, with the columns enqueue_request / enqueue_paid_request write;
-- status, batch, retries and results are the worker's.
GRANT INSERT (id, queue_position, enqueue_position, payer_address, payment_type, payment_id,
              payment_tx_hash, tx_hash_bytes32) ON mint_queue TO mintq_api;
GRANT INSERT (key, request_hash) ON idempotency_keys TO mintq_api;
GRANT UPDATE (queue_id, status_code, response) ON idempotency_keys TO mintq_api;
-- x402: the durable record before settlement, its outcome, and forgetting one the facilitator
-- never saw.
GRANT INSERT (payer_address, auth_nonce, x402_version, network, asset, pay_to, amount, valid_before,
              signature_hash, payload, requirements, from_block, lease_until) ON payments TO mintq_api;
GRANT UPDATE (status, settlement_tx_hash, settled_at, lease_until, error_reason) ON payments TO mintq_api;
GRANT DELETE ON payments TO mintq_api;

-- --- mintq_worker: the batch worker, the payment reconciler, the idempotency key pruner -----
GRANT EXECUTE ON FUNCTION mintq_queue_position(bigint) TO mintq_worker;
GRANT USAGE ON SEQUENCE mint_queue_position_seq TO mintq_worker;  -- a reconciled payment's ticket
GRANT USAGE ON SEQUENCE mint_history_id_seq TO mintq_worker;
GRANT SELECT ON mint_queue, mint_history, batch_mints, batch_attempts, system_settings, queue_cursor,
                queue_stats, payments, idempotency_keys TO mintq_worker;
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
