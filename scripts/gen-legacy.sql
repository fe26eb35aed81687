-- Fill the legacy schema (schema/legacy.sql) with N memberships and proportionate data:
-- N/10 users, N/50 groups (every 10th nested below the previous one), N memberships,
-- N/10 membership statements. Deterministic, set-based (generate_series), so a million
-- memberships take seconds. N comes from the custom setting `legacy.n`:
--   psql -c 'SET legacy.n = 1000000' -f schema/legacy.sql -f scripts/gen-legacy.sql
-- Explicit ids, then the identity sequences are moved past them so application inserts work.
SELECT set_config('legacy.users', greatest(current_setting('legacy.n')::bigint / 10, 1)::text, false),
       set_config('legacy.groups', greatest(current_setting('legacy.n')::bigint / 50, 1)::text, false);

INSERT INTO users (id, email, display_name)
SELECT i, 'user' || i || '@example.com', 'User ' || i
FROM generate_series(1, current_setting('legacy.users')::bigint) i;

INSERT INTO groups (id, name, parent_id)
SELECT i, 'group ' || i, CASE WHEN i % 10 = 0 THEN i - 1 END
FROM generate_series(1, current_setting('legacy.groups')::bigint) i;

INSERT INTO memberships (id, user_id, group_id)
SELECT i,
       1 + (i * 7919) % current_setting('legacy.users')::bigint,
       1 + (i * 104729) % current_setting('legacy.groups')::bigint
FROM generate_series(1, current_setting('legacy.n')::bigint) i;

INSERT INTO membership_statements (id, membership_id, code)
SELECT i, i * 10 - 3, CASE WHEN i % 3 = 0 THEN 'BOARD_MEMBER' ELSE 'MEMBER' END
FROM generate_series(1, current_setting('legacy.n')::bigint / 10) i;

SELECT setval(pg_get_serial_sequence('users', 'id'), (SELECT max(id) FROM users));
SELECT setval(pg_get_serial_sequence('groups', 'id'), (SELECT max(id) FROM groups));
SELECT setval(pg_get_serial_sequence('memberships', 'id'), greatest((SELECT max(id) FROM memberships), 1));
SELECT setval(pg_get_serial_sequence('membership_statements', 'id'), greatest((SELECT max(id) FROM membership_statements), 1));

ANALYZE users, groups, memberships, membership_statements;
