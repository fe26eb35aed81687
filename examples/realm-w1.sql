-- A small realm `w1` for trying `realmguard realm copy` on the embedded cluster (README's first
-- screen): 100 users, 10 groups, 1,000 memberships, 2 statement types, 1,000 statements.
-- Run it once on a database migrated with this repository's migrations/; a second run fails on
-- the realms key and changes nothing (it is one transaction).
BEGIN;
INSERT INTO realms (id, name, kind) VALUES ('w1', 'Worker 1', 'worker');
INSERT INTO users (realm_id, email, display_name)
SELECT 'w1', 'user' || g || '@w1.example', 'User ' || g FROM generate_series(1, 100) g;
INSERT INTO groups (realm_id, name) SELECT 'w1', 'group ' || g FROM generate_series(1, 10) g;
INSERT INTO memberships (realm_id, user_id, group_id)
SELECT 'w1', u.id, g.id FROM users u CROSS JOIN groups g WHERE u.realm_id = 'w1' AND g.realm_id = 'w1';
INSERT INTO policy_statement_types (realm_id, code, description)
VALUES ('w1', 'ACCEPTED', 'terms accepted'), ('w1', 'REVOKED', 'access revoked');
INSERT INTO membership_statements (realm_id, membership_id, statement_type_id)
SELECT 'w1', m.id, t.id FROM memberships m JOIN policy_statement_types t
  ON t.realm_id = m.realm_id AND t.code = 'ACCEPTED' WHERE m.realm_id = 'w1';
COMMIT;
