-- x402 payments: one durable record per EIP-3009 authorization, written before it is
-- settled, so a crash between settlement and enqueue can never lose a paid request, and
-- the same authorization can never buy two mints.

CREATE TYPE payment_status AS ENUM (
    'settling',            -- recorded and sent to the facilitator; the outcome is not known yet
    'settlement_pending',  -- the facilitator may have broadcast; reconciled on chain by the worker
    'settled',             -- the transfer is on chain and the mint is queued (same transaction)
    'failed'               -- never charged: rejected at settlement, or expired unused
);

CREATE TABLE payments (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Allocated up front: every answer about this payment, even a pending one, names the
    -- queueId its mint will have.
    queue_id           uuid NOT NULL DEFAULT gen_random_uuid(),
    payer_address      varchar(42) NOT NULL,   -- the verified authorization.from, checksummed
    auth_nonce         varchar(66) NOT NULL,   -- the EIP-3009 nonce, lowercase 0x hex
    status             payment_status NOT NULL DEFAULT 'settling',
    x402_version       smallint NOT NULL,
    network            varchar(64) NOT NULL,
    asset              varchar(42) NOT NULL,
    pay_to             varchar(42) NOT NULL,
    amount             numeric(78, 0) NOT NULL,
    valid_before       bigint NOT NULL,        -- unix seconds: unused after this, it can never settle
    signature_hash     char(64) NOT NULL,      -- sha256 of the signature: tells a replay from a forgery
    payload            jsonb NOT NULL,         -- the signed payment; never served by the status API
    requirements       jsonb NOT NULL,
    from_block         bigint,                 -- chain head when recorded: where reconciliation looks
    settlement_tx_hash varchar(66),
    error_reason       text,
    lease_until        timestamptz,            -- a request is settling it until then
    checked_at         timestamptz,            -- last on-chain reconciliation attempt
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    settled_at         timestamptz,
    CONSTRAINT payments_authorization_key UNIQUE (payer_address, auth_nonce),
    CONSTRAINT payments_queue_id_key UNIQUE (queue_id),
    CONSTRAINT payments_settlement_tx_key UNIQUE (settlement_tx_hash)
);
-- The worker's reconciliation scan: only unfinished payments.
CREATE INDEX payments_unfinished_idx ON payments (created_at)
    WHERE status IN ('settling', 'settlement_pending');
CREATE TRIGGER payments_touch BEFORE UPDATE ON payments
    FOR EACH ROW EXECUTE FUNCTION mintq_touch_updated_at();

-- A paid request names its payment; at most one request per payment.
ALTER TABLE mint_queue ADD COLUMN payment_id uuid;
ALTER TABLE mint_queue ADD CONSTRAINT mint_queue_payment_id_key UNIQUE (payment_id);

-- Operators' list of people who paid and got nothing: a settled payment whose mint failed
-- for good. Refunds are manual (send `amount` of `asset` back to `payer_address`).
CREATE VIEW refunds_due AS
SELECT p.id AS payment_id, p.queue_id, p.payer_address, p.amount, p.asset, p.network,
       p.settlement_tx_hash, coalesce(m.error_message, 'mint failed') AS reason,
       coalesce(m.processed_at, m.updated_at) AS failed_at
  FROM payments p
  JOIN mint_queue m ON m.payment_id = p.id
 WHERE p.status = 'settled' AND m.status = 'failed';
