-- Least-privilege group roles. Deployments create one LOGIN user per function and make it a
-- member (README, "Database logins and RDS Proxy"):
--   mintq_api     the enqueue and status functions: enqueue, x402 payment records, status reads;
--   mintq_worker  the batch worker with its housekeeping (payment reconciler, key pruner,
--                 retention) and the retention function;
--   the owner     whoever runs the migrations owns every object and alone can change the schema
--                 (neither group has CREATE on the schema nor owns anything).
--
-- Roles are cluster-wide while privileges are per database: the roles are created only if
-- missing (several databases of one server may migrate at once, so losing that race is fine).
-- What each role may do on each object is in grants.sql, which migrations.apply() re-applies
-- after every run: a later migration that drops and recreates an object (0013 recreates
-- mintq_enqueue) would otherwise silently take the grant away. Each object's grants are a
-- decision, checked by tests/integration/test_roles.py: A MIGRATION THAT ADDS A TABLE, VIEW,
-- SEQUENCE OR FUNCTION MUST ADD ITS GRANTS (OR ITS DELIBERATE ABSENCE) TO grants.sql AND
-- CLASSIFY IT THERE.
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

-- Functions are executable by PUBLIC unless revoked; functions later migrations create are
-- not either (default privileges of the owner). grants.sql grants what each role runs.
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
-- PostgreSQL before 15 lets PUBLIC create objects in schema public.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

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

-- Retention deletes finished queue rows (worker housekeeping and the daily retention
-- function). The worker may not DELETE from mint_queue itself: as the owner, this function
-- deletes only completed rows (their mint is in mint_history) and failed unpaid ones past the
-- retention, never a request that is still waiting, in flight or owed a refund. Returns the
-- deleted ids, so the caller's row count is the number deleted.
CREATE FUNCTION mintq_delete_expired_queue_rows(p_retention_seconds double precision, p_limit integer)
RETURNS SETOF uuid
LANGUAGE sql
SECURITY DEFINER
AS $$
    WITH doomed AS (
        SELECT id FROM mint_queue
         WHERE status IN ('completed', 'failed')
           AND processed_at < now() - make_interval(secs => p_retention_seconds)
           AND (status = 'completed' OR payment_id IS NULL)
         ORDER BY processed_at
         LIMIT p_limit
           FOR UPDATE SKIP LOCKED
    )
    DELETE FROM mint_queue m USING doomed WHERE m.id = doomed.id
    RETURNING m.id
$$;
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION mintq_delete_expired_queue_rows(double precision, integer)'
                   ' SET search_path = %I, pg_temp', current_schema());
END;
$$;
