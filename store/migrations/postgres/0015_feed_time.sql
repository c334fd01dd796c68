-- The change feed's payload also says when the change was made (`at`, milliseconds since the
-- epoch, the database's clock): an instance measures how far behind it applies other instances'
-- changes (`veil_feed_lag_seconds`).
CREATE OR REPLACE FUNCTION veil_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed jsonb;
BEGIN
    IF TG_OP = 'DELETE' THEN
        changed := to_jsonb(OLD);
    ELSE
        changed := to_jsonb(NEW);
    END IF;
    PERFORM pg_notify('veil_changes', json_build_object(
        'table', TG_TABLE_NAME,
        'key', changed ->> TG_ARGV[0],
        'tenant', changed ->> 'tenant_id',
        'type', changed ->> 'type',
        'origin', current_setting('veil.instance', true),
        'at', (extract(epoch from clock_timestamp()) * 1000)::bigint)::text);
    RETURN NULL;
END
$$;
