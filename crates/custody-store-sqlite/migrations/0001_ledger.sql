-- Tenants and their logs. A log's signing key lives outside the database (a 0600 key file);
-- only its public verifier key is kept here.
CREATE TABLE tenants (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE
);

CREATE TABLE logs (
    id            INTEGER PRIMARY KEY,
    tenant_id     INTEGER NOT NULL REFERENCES tenants(id),
    name          TEXT NOT NULL,
    origin        TEXT NOT NULL UNIQUE,
    verifier_key  TEXT NOT NULL,
    UNIQUE (tenant_id, name)
);

-- One row per leaf. `envelope` is the canonical leaf data; the other columns are copies of
-- envelope fields for queries and are never trusted by verification.
CREATE TABLE entries (
    log_id          INTEGER NOT NULL REFERENCES logs(id),
    idx             INTEGER NOT NULL,
    id              BLOB NOT NULL,
    leaf_hash       BLOB NOT NULL,
    envelope        BLOB NOT NULL,
    content_digest  BLOB NOT NULL,
    entry_type      TEXT NOT NULL,
    actor_id        TEXT NOT NULL,
    subject_kind    TEXT NOT NULL,
    subject_id      TEXT NOT NULL,
    time_us         INTEGER NOT NULL,
    PRIMARY KEY (log_id, idx)
);
CREATE UNIQUE INDEX entries_by_id ON entries (log_id, id);
CREATE INDEX entries_by_type ON entries (log_id, entry_type, idx);
CREATE INDEX entries_by_actor ON entries (log_id, actor_id, idx);
CREATE INDEX entries_by_subject ON entries (log_id, subject_id, idx);
CREATE INDEX entries_by_time ON entries (log_id, time_us, idx);

CREATE TABLE related (
    log_id  INTEGER NOT NULL,
    idx     INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    id      TEXT NOT NULL,
    rel     TEXT NOT NULL
);
CREATE INDEX related_by_id ON related (log_id, id, idx);

-- Payloads are kept apart from entries so that erasure deletes whole rows.
CREATE TABLE payloads (
    log_id   INTEGER NOT NULL,
    idx      INTEGER NOT NULL,
    salt     BLOB NOT NULL,
    payload  BLOB NOT NULL,
    PRIMARY KEY (log_id, idx)
) WITHOUT ROWID;

-- Hashes of complete, aligned subtrees: level L, index N covers leaves [N*2^L, (N+1)*2^L).
CREATE TABLE nodes (
    log_id  INTEGER NOT NULL,
    level   INTEGER NOT NULL,
    idx     INTEGER NOT NULL,
    hash    BLOB NOT NULL,
    PRIMARY KEY (log_id, level, idx)
) WITHOUT ROWID;

-- Every checkpoint the log ever signed, so any published checkpoint can be re-served and
-- checked for consistency.
CREATE TABLE checkpoints (
    log_id  INTEGER NOT NULL,
    size    INTEGER NOT NULL,
    root    BLOB NOT NULL,
    note    TEXT NOT NULL,
    PRIMARY KEY (log_id, size)
) WITHOUT ROWID;
