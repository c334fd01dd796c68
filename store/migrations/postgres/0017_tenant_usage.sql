-- What the secret quotas of each tenant count (its secrets, and the bytes of their kept values:
-- current, earlier and pending ciphertexts), kept by triggers in the transaction of every change.
-- A write's quota check reads one row instead of counting and summing every secret of the tenant
-- (which made each write, and filling a tenant, slower the more secrets it held).
CREATE TABLE tenant_usage (
    tenant_id     uuid PRIMARY KEY,
    secrets       bigint NOT NULL DEFAULT 0,
    secret_bytes  bigint NOT NULL DEFAULT 0
);

INSERT INTO tenant_usage (tenant_id, secrets, secret_bytes)
SELECT s.tenant_id, COUNT(*),
       SUM(octet_length(s.ciphertext))
       + COALESCE(SUM((SELECT SUM(octet_length(h.ciphertext)) FROM secret_history h WHERE h.secret_id = s.id)), 0)
       + COALESCE(SUM((SELECT octet_length(p.ciphertext) FROM secret_pending p WHERE p.secret_id = s.id)), 0)
FROM secrets s GROUP BY s.tenant_id;

CREATE FUNCTION veil_tenant_usage_secret() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO tenant_usage (tenant_id, secrets, secret_bytes)
        VALUES (NEW.tenant_id, 1, octet_length(NEW.ciphertext))
        ON CONFLICT (tenant_id) DO UPDATE SET secrets = tenant_usage.secrets + 1,
            secret_bytes = tenant_usage.secret_bytes + octet_length(NEW.ciphertext);
        RETURN NEW;
    ELSIF TG_OP = 'UPDATE' THEN
        IF octet_length(NEW.ciphertext) <> octet_length(OLD.ciphertext) THEN
            UPDATE tenant_usage
               SET secret_bytes = secret_bytes + octet_length(NEW.ciphertext) - octet_length(OLD.ciphertext)
             WHERE tenant_id = NEW.tenant_id;
        END IF;
        RETURN NEW;
    ELSE
        -- Before the row goes: its earlier and pending values go with it (ON DELETE CASCADE),
        -- counted off here; the value triggers skip rows whose secret is gone.
        UPDATE tenant_usage SET secrets = secrets - 1,
               secret_bytes = secret_bytes - octet_length(OLD.ciphertext)
                 - COALESCE((SELECT SUM(octet_length(ciphertext)) FROM secret_history WHERE secret_id = OLD.id), 0)
                 - COALESCE((SELECT SUM(octet_length(ciphertext)) FROM secret_pending WHERE secret_id = OLD.id), 0)
         WHERE tenant_id = OLD.tenant_id;
        RETURN OLD;
    END IF;
END $$;

CREATE TRIGGER tenant_usage_secret_insert AFTER INSERT ON secrets
    FOR EACH ROW EXECUTE FUNCTION veil_tenant_usage_secret();
CREATE TRIGGER tenant_usage_secret_update AFTER UPDATE OF ciphertext ON secrets
    FOR EACH ROW EXECUTE FUNCTION veil_tenant_usage_secret();
CREATE TRIGGER tenant_usage_secret_delete BEFORE DELETE ON secrets
    FOR EACH ROW EXECUTE FUNCTION veil_tenant_usage_secret();

-- Earlier (secret_history) and pending (secret_pending) values of a secret.
CREATE FUNCTION veil_tenant_usage_value() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    delta bigint;
    secret uuid;
BEGIN
    IF TG_OP = 'INSERT' THEN
        delta := octet_length(NEW.ciphertext);
        secret := NEW.secret_id;
    ELSIF TG_OP = 'UPDATE' THEN
        delta := octet_length(NEW.ciphertext) - octet_length(OLD.ciphertext);
        secret := NEW.secret_id;
    ELSE
        delta := -octet_length(OLD.ciphertext);
        secret := OLD.secret_id;
    END IF;
    IF delta <> 0 THEN
        UPDATE tenant_usage SET secret_bytes = secret_bytes + delta
         WHERE tenant_id = (SELECT tenant_id FROM secrets WHERE id = secret);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER tenant_usage_history AFTER INSERT OR UPDATE OF ciphertext OR DELETE ON secret_history
    FOR EACH ROW EXECUTE FUNCTION veil_tenant_usage_value();
CREATE TRIGGER tenant_usage_pending AFTER INSERT OR UPDATE OF ciphertext OR DELETE ON secret_pending
    FOR EACH ROW EXECUTE FUNCTION veil_tenant_usage_value();
