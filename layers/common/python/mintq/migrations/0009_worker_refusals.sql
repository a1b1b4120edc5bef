-- Why a signer's batch worker is not sending right now (issue 8): an underfunded signer,
-- an unreachable RPC, a nonce the chain no longer knows, the fee ceiling, a paused
-- contract. One row per signer while its cycles fault; the worker deletes the row as soon
-- as a cycle goes through, so the status endpoints can say plainly why the line waits
-- (one primary-key read, no web3) instead of only an ERROR line in the log per cycle.
CREATE TABLE worker_refusals (
    chain_id       bigint NOT NULL,
    signer_address varchar(42) NOT NULL,
    code           text NOT NULL,         -- the error code, e.g. signer_underfunded
    reason         text NOT NULL,         -- the worker's own words, for people
    since          timestamptz NOT NULL DEFAULT now(),  -- first cycle refused for this code
    last_seen_at   timestamptz NOT NULL DEFAULT now(),  -- latest cycle refused
    PRIMARY KEY (chain_id, signer_address)
);
