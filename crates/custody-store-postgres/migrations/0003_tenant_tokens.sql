-- A tenant's transaction may see and write the tokens of its own principals. Creating a
-- principal with its first token, issuing a token and revoking one are committed in the same
-- transaction as the governance entry that records them, and that transaction names the
-- tenant, not the server scope. Tokens of server administrators (no tenant) stay reachable
-- only in the server scope.

CREATE POLICY tenant_principal_tokens ON tokens
    USING (principal_id IN (SELECT id FROM principals WHERE tenant = custody_tenant()))
    WITH CHECK (principal_id IN (SELECT id FROM principals WHERE tenant = custody_tenant()));
