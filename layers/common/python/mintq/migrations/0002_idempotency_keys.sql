-- Client retries are safe: POST /mint with an Idempotency-Key returns the first answer
-- again for the same body, and 409 for a different body under the same key.
CREATE TABLE idempotency_keys (
    key          varchar(255) PRIMARY KEY,
    request_hash char(64) NOT NULL,      -- sha256 of the canonical request
    queue_id     uuid,
    status_code  integer,
    response     jsonb,
    created_at   timestamptz NOT NULL DEFAULT now()
);
-- Keys are kept at least 24 hours; an operator may prune older ones with
--   DELETE FROM idempotency_keys WHERE created_at < now() - interval '7 days';
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
