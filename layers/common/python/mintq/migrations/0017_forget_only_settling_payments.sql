-- The API forgets a payment only while it is settling and the facilitator was never reached
-- (PaidMint._settle: nothing can have been charged, so the same payment may be tried again).
-- It held DELETE on the whole of payments, so a compromised API login could have erased the
-- record of a settled, pending or failed payment: the evidence that a payer was charged. Now
-- this function, running as the owner, deletes that one row in that one state and says whether
-- it did; grants.sql gives the API EXECUTE on it and no DELETE on payments.
CREATE FUNCTION mintq_forget_payment(p_id uuid)
RETURNS boolean
LANGUAGE sql
SECURITY DEFINER
AS $$
    WITH forgotten AS (
        DELETE FROM payments WHERE id = p_id AND status = 'settling' RETURNING id
    )
    SELECT count(*) = 1 FROM forgotten
$$;
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION mintq_forget_payment(uuid) SET search_path = %I, pg_temp',
                   current_schema());
END;
$$;
