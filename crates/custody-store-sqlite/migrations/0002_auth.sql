-- Who may call custody. A principal's display name is personal data and lives only here;
-- the logs name principals by `id`.
CREATE TABLE principals (
    id          TEXT PRIMARY KEY,
    tenant      TEXT,            -- NULL for a server administrator
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    roles       TEXT NOT NULL,
    created_us  INTEGER NOT NULL
);
CREATE INDEX principals_by_tenant ON principals (tenant, id);

-- API tokens: the public id and the SHA-256 of the secret, never the secret.
CREATE TABLE tokens (
    id            TEXT PRIMARY KEY,
    principal_id  TEXT NOT NULL REFERENCES principals(id),
    secret_hash   BLOB NOT NULL,
    created_us    INTEGER NOT NULL,
    expires_us    INTEGER NOT NULL,
    revoked_us    INTEGER
);
CREATE INDEX tokens_by_principal ON tokens (principal_id, created_us);
