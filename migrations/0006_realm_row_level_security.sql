-- Row level security as a second wall between realms: the application connects as `app` and sets
-- app.realm_id for its transaction (set_config('app.realm_id', $1, true)); every realm table then
-- shows and accepts only that realm's rows, whatever a query forgets. FORCE makes the owner
-- subject to it too; superusers and BYPASSRLS roles (the migration runner) are not.
-- See docs/rls.md.

-- Roles are cluster-wide: another database of the cluster may have created it already, maybe
-- at the same moment. (A DO block: lint cannot parse it; it only creates the role.)
-- realmguard:ignore parse-error
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app') THEN
        CREATE ROLE app NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

GRANT USAGE ON SCHEMA public TO app;
GRANT SELECT ON realms TO app;
GRANT SELECT, INSERT, UPDATE, DELETE
    ON users, groups, memberships, policy_statement_types, membership_statements TO app;

-- The setting is read once per statement (a scalar subquery), and an unset setting means no
-- realm: no row rather than an error.
CREATE POLICY users_realm ON users
    USING (realm_id = (SELECT current_setting('app.realm_id', true)))
    WITH CHECK (realm_id = (SELECT current_setting('app.realm_id', true)));
CREATE POLICY groups_realm ON groups
    USING (realm_id = (SELECT current_setting('app.realm_id', true)))
    WITH CHECK (realm_id = (SELECT current_setting('app.realm_id', true)));
CREATE POLICY memberships_realm ON memberships
    USING (realm_id = (SELECT current_setting('app.realm_id', true)))
    WITH CHECK (realm_id = (SELECT current_setting('app.realm_id', true)));
CREATE POLICY policy_statement_types_realm ON policy_statement_types
    USING (realm_id = (SELECT current_setting('app.realm_id', true)))
    WITH CHECK (realm_id = (SELECT current_setting('app.realm_id', true)));
CREATE POLICY membership_statements_realm ON membership_statements
    USING (realm_id = (SELECT current_setting('app.realm_id', true)))
    WITH CHECK (realm_id = (SELECT current_setting('app.realm_id', true)));

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
ALTER TABLE groups ENABLE ROW LEVEL SECURITY;
ALTER TABLE groups FORCE ROW LEVEL SECURITY;
ALTER TABLE memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE memberships FORCE ROW LEVEL SECURITY;
ALTER TABLE policy_statement_types ENABLE ROW LEVEL SECURITY;
ALTER TABLE policy_statement_types FORCE ROW LEVEL SECURITY;
ALTER TABLE membership_statements ENABLE ROW LEVEL SECURITY;
ALTER TABLE membership_statements FORCE ROW LEVEL SECURITY;
