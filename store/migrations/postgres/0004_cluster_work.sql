-- Work done once per cluster (an integration's start-up: logging in, creating the LORIOT output),
-- under an advisory lock, with the fingerprint of what it was done for (configuration and secret
-- versions) and how it went (`failure` NULL: it worked), so another instance starting the same
-- integration moments later takes the outcome instead of doing it again. Goes with its
-- configuration. No trigger: this is not a change other instances apply.
CREATE TABLE cluster_work (
    owner_id    uuid NOT NULL REFERENCES owners (id) ON DELETE CASCADE,
    work        text NOT NULL,
    fingerprint text NOT NULL,
    failure     text,
    done_time   bigint NOT NULL,
    PRIMARY KEY (owner_id, work)
);
