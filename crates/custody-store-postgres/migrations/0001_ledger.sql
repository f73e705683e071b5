-- Tenants and their logs. A log's signing key lives outside the database (a 0600 key file);
-- only its public verifier key is kept here.
CREATE TABLE tenants (
    id    integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name  text NOT NULL UNIQUE
);

CREATE TABLE logs (
    id            integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     integer NOT NULL REFERENCES tenants (id),
    name          text NOT NULL,
    origin        text NOT NULL UNIQUE,
    verifier_key  text NOT NULL,
    UNIQUE (tenant_id, name)
);

-- One row per leaf. `envelope` is the canonical leaf data; the other columns are copies of
-- envelope fields for queries and are never trusted by verification. Every ledger row carries
-- its tenant so that row-level security can confine a transaction to one tenant.
CREATE TABLE entries (
    tenant_id       integer NOT NULL,
    log_id          integer NOT NULL REFERENCES logs (id),
    idx             bigint NOT NULL,
    id              uuid NOT NULL,
    leaf_hash       bytea NOT NULL,
    envelope        bytea NOT NULL,
    content_digest  bytea NOT NULL,
    entry_type      text NOT NULL,
    actor_id        text NOT NULL,
    subject_kind    text NOT NULL,
    subject_id      text NOT NULL,
    time_us         bigint NOT NULL,
    PRIMARY KEY (log_id, idx)
);
CREATE UNIQUE INDEX entries_by_id ON entries (log_id, id);
CREATE INDEX entries_by_type ON entries (log_id, entry_type, idx);
CREATE INDEX entries_by_actor ON entries (log_id, actor_id, idx);
CREATE INDEX entries_by_subject ON entries (log_id, subject_id, idx);
CREATE INDEX entries_by_time ON entries (log_id, time_us, idx);

CREATE TABLE related (
    tenant_id  integer NOT NULL,
    log_id     integer NOT NULL,
    idx        bigint NOT NULL,
    kind       text NOT NULL,
    id         text NOT NULL,
    rel        text NOT NULL
);
CREATE INDEX related_by_id ON related (log_id, id, idx);

-- Payloads are kept apart from entries so that erasure deletes whole rows.
CREATE TABLE payloads (
    tenant_id  integer NOT NULL,
    log_id     integer NOT NULL,
    idx        bigint NOT NULL,
    salt       bytea NOT NULL,
    payload    bytea NOT NULL,
    PRIMARY KEY (log_id, idx)
);

-- Hashes of complete, aligned subtrees: level L, index N covers leaves [N*2^L, (N+1)*2^L).
CREATE TABLE nodes (
    tenant_id  integer NOT NULL,
    log_id     integer NOT NULL,
    level      smallint NOT NULL,
    idx        bigint NOT NULL,
    hash       bytea NOT NULL,
    PRIMARY KEY (log_id, level, idx)
);

-- Every checkpoint the log ever signed, so any published checkpoint can be re-served and
-- checked for consistency.
CREATE TABLE checkpoints (
    tenant_id  integer NOT NULL,
    log_id     integer NOT NULL,
    size       bigint NOT NULL,
    root       bytea NOT NULL,
    note       text NOT NULL,
    PRIMARY KEY (log_id, size)
);

-- Who may call custody. A principal's display name is personal data and lives only here;
-- the logs name principals by `id`.
CREATE TABLE principals (
    id          text PRIMARY KEY,
    tenant      text,            -- NULL for a server administrator
    kind        text NOT NULL,
    name        text NOT NULL,
    roles       text NOT NULL,
    created_us  bigint NOT NULL
);
CREATE INDEX principals_by_tenant ON principals (tenant, id);

-- API tokens: the public id and the SHA-256 of the secret, never the secret.
CREATE TABLE tokens (
    id            text PRIMARY KEY,
    principal_id  text NOT NULL REFERENCES principals (id),
    secret_hash   bytea NOT NULL,
    created_us    bigint NOT NULL,
    expires_us    bigint NOT NULL,
    revoked_us    bigint
);
CREATE INDEX tokens_by_principal ON tokens (principal_id, created_us);
