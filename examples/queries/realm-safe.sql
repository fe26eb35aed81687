-- Realm-safe query shapes for the project's schema (migrations/): users, groups, memberships,
-- policy statements. Every query binds each realm table it reads to ONE realm, at its own level.
--
-- The realm comes from one place: the request's transaction sets it once
--     BEGIN; SET LOCAL app.realm_id = 'hub'; ...; COMMIT;
-- (or SELECT set_config('app.realm_id', $1, true)), and every query reads it back with
-- current_setting('app.realm_id'). Services never take a realm parameter (docs/audit.md).
-- `realmguard audit --schema-from migrations examples/queries` reports nothing here.

-- name: SetRealm :exec
SELECT set_config('app.realm_id', @realm_id, true);

-- name: GetUser :one
SELECT id, email, display_name
FROM users
WHERE realm_id = current_setting('app.realm_id') AND id = @id;

-- name: FindUserByEmail :one
SELECT id, display_name FROM users
WHERE realm_id = current_setting('app.realm_id') AND email = @email;

-- name: ListGroups :many
SELECT id, name, parent_id FROM groups
WHERE realm_id = current_setting('app.realm_id')
ORDER BY name;

-- The join carries realm_id: a group of another realm with the same id never joins in.
-- name: GroupMembers :many
SELECT u.id, u.email
FROM memberships m
JOIN users u ON u.id = m.user_id AND u.realm_id = m.realm_id
WHERE m.realm_id = current_setting('app.realm_id') AND m.group_id = @group_id;

-- name: GroupsOfUser :many
SELECT g.id, g.name
FROM groups g
JOIN memberships m ON m.group_id = g.id AND m.realm_id = g.realm_id
WHERE g.realm_id = current_setting('app.realm_id') AND m.user_id = @user_id;

-- Four realm tables in one join, each bound through the one before it.
-- name: StatementsOfUser :many
SELECT t.code, s.issued_at, g.name
FROM membership_statements s
JOIN memberships m ON m.id = s.membership_id AND m.realm_id = s.realm_id
JOIN groups g ON g.id = m.group_id AND g.realm_id = m.realm_id
JOIN policy_statement_types t ON t.id = s.statement_type_id AND t.realm_id = s.realm_id
WHERE s.realm_id = current_setting('app.realm_id') AND m.user_id = @user_id;

-- A correlated subquery binds to the outer reference's realm.
-- name: EmptyGroups :many
SELECT g.id, g.name FROM groups g
WHERE g.realm_id = current_setting('app.realm_id')
  AND NOT EXISTS (SELECT 1 FROM memberships m WHERE m.group_id = g.id AND m.realm_id = g.realm_id);

-- name: GroupTree :many
WITH RECURSIVE tree AS (
    SELECT id, parent_id, name FROM groups
    WHERE realm_id = current_setting('app.realm_id') AND id = @root_id
  UNION ALL
    SELECT g.id, g.parent_id, g.name FROM groups g
    JOIN tree t ON g.parent_id = t.id
    WHERE g.realm_id = current_setting('app.realm_id')
)
SELECT * FROM tree;

-- name: CreateGroup :one
INSERT INTO groups (realm_id, name, parent_id)
VALUES (current_setting('app.realm_id'), @name, sqlc.narg(parent_id))
RETURNING id;

-- name: AddMember :exec
INSERT INTO memberships (realm_id, user_id, group_id)
VALUES (current_setting('app.realm_id'), @user_id, @group_id)
ON CONFLICT (realm_id, user_id, group_id) DO NOTHING;

-- name: UpsertUser :one
INSERT INTO users (realm_id, email, display_name)
VALUES (current_setting('app.realm_id'), @email, @display_name)
ON CONFLICT (realm_id, email) DO UPDATE SET display_name = EXCLUDED.display_name
RETURNING id;

-- name: RenameGroup :exec
UPDATE groups SET name = @name
WHERE realm_id = current_setting('app.realm_id') AND id = @id;

-- name: MoveMember :exec
UPDATE memberships m SET group_id = g.id
FROM groups g
WHERE g.realm_id = m.realm_id AND g.name = @group_name
  AND m.realm_id = current_setting('app.realm_id') AND m.id = @id;

-- name: RemoveMembersOfGroup :exec
DELETE FROM memberships m
USING groups g
WHERE m.group_id = g.id AND m.realm_id = g.realm_id
  AND g.realm_id = current_setting('app.realm_id') AND g.name = @group_name;

-- Reading every realm on purpose is said out loud, with the reason.
-- realmguard:cross-realm the operator's dashboard counts users per realm
-- name: UsersPerRealm :many
SELECT realm_id, count(*) FROM users GROUP BY realm_id;
