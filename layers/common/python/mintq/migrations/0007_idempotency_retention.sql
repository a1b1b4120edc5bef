-- Idempotency keys are pruned by the batch worker once past their retention (never
-- under the 24 hours promised to clients, whatever the setting says).
INSERT INTO system_settings (key, value, description) VALUES
    ('idempotency_key_retention_hours', '48',
     'Idempotency-Key answers are kept this long (at least 24), then pruned by the batch worker')
ON CONFLICT (key) DO NOTHING;
