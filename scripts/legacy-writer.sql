-- The OLD application's SQL against the legacy schema (no realm_id anywhere), as one pgbench
-- transaction: insert, move, read and delete a membership. The benchmarks pass the table sizes:
--   pgbench -D nusers=… -D ngroups=… -D n=… -f scripts/legacy-writer.sql
-- Memberships with id ≡ 1 (mod 10) have no statements (scripts/gen-legacy.sql), so deleting
-- them never trips a foreign key.
\set u random(1, :nusers)
\set g random(1, :ngroups)
\set m random(1, :n)
\set d random(0, :n / 10 - 1) * 10 + 1
BEGIN;
INSERT INTO memberships (user_id, group_id) VALUES (:u, :g);
UPDATE memberships SET group_id = :g WHERE id = :m;
SELECT group_id FROM memberships WHERE id = :m;
DELETE FROM memberships WHERE id = :d;
END;
