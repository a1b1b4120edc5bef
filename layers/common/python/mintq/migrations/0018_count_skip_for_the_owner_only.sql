-- The insert trigger skips counting a statement only when mintq_enqueue runs it (0016: the function
-- counts its own row). 0016 knew that statement by a setting, mintq.enqueue = 'on', which any login
-- may set: the API login, which may insert requests directly (the paid path), could set it and
-- insert rows nobody counted; claiming them later takes them off the pending count and off their
-- payer's count, so queue_stats drifts and that payer's cap admits more than it should. Now the
-- statement must also run as the table's owner, which only the SECURITY DEFINER function does.
DO $$
BEGIN
    EXECUTE 'DROP TRIGGER mint_queue_count_insert ON mint_queue';
    EXECUTE format(
        'CREATE TRIGGER mint_queue_count_insert AFTER INSERT ON mint_queue'
        ' REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT'
        ' WHEN (current_setting(''mintq.enqueue'', true) IS DISTINCT FROM ''on'' OR current_user <> %L)'
        ' EXECUTE FUNCTION mint_queue_count_insert()',
        (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'mint_queue'::regclass));
END;
$$;
