-- Data key rotations: a new data key seals every new value at once; a background job seals every
-- stored value again under it, batch by batch (`done` of `total`), resumable by any instance after
-- a crash, and retires the older keys when no value uses them (`finished_time`).
CREATE TABLE key_rotations (
    key_id        bigint PRIMARY KEY,
    started_time  bigint NOT NULL,
    started_by    text NOT NULL,
    total         bigint NOT NULL,
    done          bigint NOT NULL DEFAULT 0,
    finished_time bigint
);

-- A new data key is announced: every instance loads it before it meets a value sealed with it.
CREATE TRIGGER data_keys_changed AFTER INSERT OR UPDATE OR DELETE ON data_keys
    FOR EACH ROW EXECUTE FUNCTION veil_notify_change('id');
