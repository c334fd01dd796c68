-- What the secret quotas of each tenant count (its secrets, and the bytes of their kept values:
-- current, earlier and pending ciphertexts), kept by triggers in the transaction of every change.
-- A write's quota check reads one row instead of counting and summing every secret of the tenant
-- (which made each write, and filling a tenant, slower the more secrets it held).
CREATE TABLE tenant_usage (
    tenant_id     TEXT PRIMARY KEY,
    secrets       INTEGER NOT NULL DEFAULT 0,
    secret_bytes  INTEGER NOT NULL DEFAULT 0
);

INSERT INTO tenant_usage (tenant_id, secrets, secret_bytes)
SELECT s.tenant_id, COUNT(*),
       SUM(LENGTH(s.ciphertext))
       + COALESCE(SUM((SELECT SUM(LENGTH(h.ciphertext)) FROM secret_history h WHERE h.secret_id = s.id)), 0)
       + COALESCE(SUM((SELECT LENGTH(p.ciphertext) FROM secret_pending p WHERE p.secret_id = s.id)), 0)
FROM secrets s GROUP BY s.tenant_id;

CREATE TRIGGER tenant_usage_secret_insert AFTER INSERT ON secrets BEGIN
    INSERT OR IGNORE INTO tenant_usage (tenant_id) VALUES (NEW.tenant_id);
    UPDATE tenant_usage SET secrets = secrets + 1, secret_bytes = secret_bytes + LENGTH(NEW.ciphertext)
     WHERE tenant_id = NEW.tenant_id;
END;

CREATE TRIGGER tenant_usage_secret_update AFTER UPDATE OF ciphertext ON secrets
WHEN LENGTH(NEW.ciphertext) <> LENGTH(OLD.ciphertext) BEGIN
    UPDATE tenant_usage SET secret_bytes = secret_bytes + LENGTH(NEW.ciphertext) - LENGTH(OLD.ciphertext)
     WHERE tenant_id = NEW.tenant_id;
END;

-- A deleted secret's earlier and pending values go with it (ON DELETE CASCADE, after the row):
-- they are counted off here, while they are still there; the triggers below skip rows whose
-- secret is gone.
CREATE TRIGGER tenant_usage_secret_delete BEFORE DELETE ON secrets BEGIN
    UPDATE tenant_usage SET secrets = secrets - 1,
           secret_bytes = secret_bytes - LENGTH(OLD.ciphertext)
             - COALESCE((SELECT SUM(LENGTH(ciphertext)) FROM secret_history WHERE secret_id = OLD.id), 0)
             - COALESCE((SELECT SUM(LENGTH(ciphertext)) FROM secret_pending WHERE secret_id = OLD.id), 0)
     WHERE tenant_id = OLD.tenant_id;
END;

CREATE TRIGGER tenant_usage_history_insert AFTER INSERT ON secret_history BEGIN
    UPDATE tenant_usage SET secret_bytes = secret_bytes + LENGTH(NEW.ciphertext)
     WHERE tenant_id = (SELECT tenant_id FROM secrets WHERE id = NEW.secret_id);
END;

CREATE TRIGGER tenant_usage_history_update AFTER UPDATE OF ciphertext ON secret_history
WHEN LENGTH(NEW.ciphertext) <> LENGTH(OLD.ciphertext) BEGIN
    UPDATE tenant_usage SET secret_bytes = secret_bytes + LENGTH(NEW.ciphertext) - LENGTH(OLD.ciphertext)
     WHERE tenant_id = (SELECT tenant_id FROM secrets WHERE id = NEW.secret_id);
END;

CREATE TRIGGER tenant_usage_history_delete AFTER DELETE ON secret_history BEGIN
    UPDATE tenant_usage SET secret_bytes = secret_bytes - LENGTH(OLD.ciphertext)
     WHERE tenant_id = (SELECT tenant_id FROM secrets WHERE id = OLD.secret_id);
END;

CREATE TRIGGER tenant_usage_pending_insert AFTER INSERT ON secret_pending BEGIN
    UPDATE tenant_usage SET secret_bytes = secret_bytes + LENGTH(NEW.ciphertext)
     WHERE tenant_id = (SELECT tenant_id FROM secrets WHERE id = NEW.secret_id);
END;

CREATE TRIGGER tenant_usage_pending_update AFTER UPDATE OF ciphertext ON secret_pending
WHEN LENGTH(NEW.ciphertext) <> LENGTH(OLD.ciphertext) BEGIN
    UPDATE tenant_usage SET secret_bytes = secret_bytes + LENGTH(NEW.ciphertext) - LENGTH(OLD.ciphertext)
     WHERE tenant_id = (SELECT tenant_id FROM secrets WHERE id = NEW.secret_id);
END;

CREATE TRIGGER tenant_usage_pending_delete AFTER DELETE ON secret_pending BEGIN
    UPDATE tenant_usage SET secret_bytes = secret_bytes - LENGTH(OLD.ciphertext)
     WHERE tenant_id = (SELECT tenant_id FROM secrets WHERE id = OLD.secret_id);
END;
