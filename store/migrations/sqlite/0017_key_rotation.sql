-- Data key rotations: a new data key seals every new value at once; a background job seals every
-- stored value again under it, batch by batch (`done` of `total`), resumable by any instance after
-- a crash, and retires the older keys when no value uses them (`finished_time`).
CREATE TABLE key_rotations (
    key_id        INTEGER PRIMARY KEY,
    started_time  INTEGER NOT NULL,
    started_by    TEXT NOT NULL,
    total         INTEGER NOT NULL,
    done          INTEGER NOT NULL DEFAULT 0,
    finished_time INTEGER
);
