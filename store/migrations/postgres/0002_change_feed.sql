-- The change feed. Every committed change to what instances keep in memory is announced on the
-- channel `veil_changes`: PostgreSQL delivers notifications at commit, in commit order, and never
-- for a transaction that rolled back. The payload names the table, the row's key (the column given
-- to the trigger), its tenant and type where the table has them, and the instance that wrote it
-- (each instance sets `veil.instance` on its connections), so an instance skips the changes it
-- applied itself when it wrote them. Rows, not values: nothing secret is ever in a payload.
CREATE FUNCTION veil_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
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
        'origin', current_setting('veil.instance', true))::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER secrets_changed AFTER INSERT OR UPDATE OR DELETE ON secrets
    FOR EACH ROW EXECUTE FUNCTION veil_notify_change('id');
CREATE TRIGGER secret_shares_changed AFTER INSERT OR UPDATE OR DELETE ON secret_shares
    FOR EACH ROW EXECUTE FUNCTION veil_notify_change('secret_id');
CREATE TRIGGER owners_changed AFTER INSERT OR UPDATE OR DELETE ON owners
    FOR EACH ROW EXECUTE FUNCTION veil_notify_change('id');
CREATE TRIGGER tenants_changed AFTER INSERT OR UPDATE OR DELETE ON tenants
    FOR EACH ROW EXECUTE FUNCTION veil_notify_change('id');
CREATE TRIGGER users_changed AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION veil_notify_change('id');
CREATE TRIGGER roles_changed AFTER INSERT OR UPDATE OR DELETE ON roles
    FOR EACH ROW EXECUTE FUNCTION veil_notify_change('id');
CREATE TRIGGER customers_changed AFTER INSERT OR UPDATE OR DELETE ON customers
    FOR EACH ROW EXECUTE FUNCTION veil_notify_change('id');
