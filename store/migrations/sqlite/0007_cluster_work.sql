-- Work done once for everyone (an integration's start-up: logging in, creating the LORIOT output),
-- with the fingerprint of what it was done for (configuration and secret versions) and how it went
-- (`failure` NULL: it worked). Goes with its configuration.
CREATE TABLE cluster_work (
    owner_id    TEXT NOT NULL REFERENCES owners (id) ON DELETE CASCADE,
    work        TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    failure     TEXT,
    done_time   INTEGER NOT NULL,
    PRIMARY KEY (owner_id, work)
);
