-- Tenant isolation inside the database. custody opens every transaction that touches one
-- tenant's rows with `SET LOCAL custody.tenant_id` and `custody.tenant`, and the few that span
-- tenants (listing tenants, creating one, authenticating a token) with `custody.scope =
-- 'server'`. A transaction that sets neither sees no rows at all. FORCE makes the policies
-- bind the tables' owner too; only superusers and BYPASSRLS roles escape them, and custody
-- refuses to run as one.

CREATE FUNCTION custody_server_scope() RETURNS boolean
    LANGUAGE sql STABLE
    AS $$ SELECT coalesce(current_setting('custody.scope', true), '') = 'server' $$;

CREATE FUNCTION custody_tenant_id() RETURNS integer
    LANGUAGE sql STABLE
    AS $$ SELECT nullif(current_setting('custody.tenant_id', true), '')::integer $$;

CREATE FUNCTION custody_tenant() RETURNS text
    LANGUAGE sql STABLE
    AS $$ SELECT nullif(current_setting('custody.tenant', true), '') $$;

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON tenants
    USING (custody_server_scope() OR id = custody_tenant_id())
    WITH CHECK (custody_server_scope());

ALTER TABLE logs ENABLE ROW LEVEL SECURITY;
ALTER TABLE logs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON logs
    USING (custody_server_scope() OR tenant_id = custody_tenant_id())
    WITH CHECK (custody_server_scope() OR tenant_id = custody_tenant_id());

ALTER TABLE entries ENABLE ROW LEVEL SECURITY;
ALTER TABLE entries FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON entries
    USING (custody_server_scope() OR tenant_id = custody_tenant_id())
    WITH CHECK (custody_server_scope() OR tenant_id = custody_tenant_id());

ALTER TABLE related ENABLE ROW LEVEL SECURITY;
ALTER TABLE related FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON related
    USING (custody_server_scope() OR tenant_id = custody_tenant_id())
    WITH CHECK (custody_server_scope() OR tenant_id = custody_tenant_id());

ALTER TABLE payloads ENABLE ROW LEVEL SECURITY;
ALTER TABLE payloads FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON payloads
    USING (custody_server_scope() OR tenant_id = custody_tenant_id())
    WITH CHECK (custody_server_scope() OR tenant_id = custody_tenant_id());

ALTER TABLE nodes ENABLE ROW LEVEL SECURITY;
ALTER TABLE nodes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON nodes
    USING (custody_server_scope() OR tenant_id = custody_tenant_id())
    WITH CHECK (custody_server_scope() OR tenant_id = custody_tenant_id());

ALTER TABLE checkpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE checkpoints FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON checkpoints
    USING (custody_server_scope() OR tenant_id = custody_tenant_id())
    WITH CHECK (custody_server_scope() OR tenant_id = custody_tenant_id());

ALTER TABLE principals ENABLE ROW LEVEL SECURITY;
ALTER TABLE principals FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON principals
    USING (custody_server_scope() OR tenant = custody_tenant())
    WITH CHECK (custody_server_scope() OR tenant = custody_tenant());

ALTER TABLE tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON tokens
    USING (custody_server_scope())
    WITH CHECK (custody_server_scope());
