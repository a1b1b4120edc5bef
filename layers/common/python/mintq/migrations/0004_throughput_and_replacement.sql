-- Settings for gas-sized batches, pipelining and stuck-transaction replacement.
INSERT INTO system_settings (key, value, description) VALUES
    ('batch_gas_target', '15000000',
     'Gas a batch may use; never above the block gas limit or the 2^24 per-transaction cap'),
    ('max_inflight_batches', '1',
     'Batches one signer keeps in flight at consecutive nonces (1 = wait for each receipt)'),
    ('stuck_after_seconds', '45',
     'A transaction not mined after this long is replaced at the same nonce with higher fees'),
    ('fee_bump_percent', '12.5',
     'How much a replacement raises both fee fields (nodes require at least 10)'),
    ('max_fee_per_gas_gwei', '500',
     'Fee ceiling: no transaction or replacement offers more than this per gas')
ON CONFLICT (key) DO NOTHING;

-- Per-mint gas of recent confirmed batches sizes the next ones.
CREATE INDEX batch_mints_confirmed_idx ON batch_mints (chain_id, token_address, confirmed_at DESC)
    WHERE status = 'confirmed';
