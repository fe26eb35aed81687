#!/usr/bin/env bash
# Benchmark `realmguard realm move --online`: the write pause (how long writes to the realm are
# refused: from the fence to a verified target, the report's fence_ms) while a writer keeps
# inserting into the realm, that every row the writer committed is on the target, and that a
# second writer to another realm (the rest of the hub's traffic) sees no error.
# Two embedded clusters this script starts; the source restarted with wal_level = logical.
# Realm w1 holds N memberships (default 1,000,000; N/10 users, N/50 groups). Target: pause ≤ 2 s.
#
#   scripts/bench-realm-online.sh        N=200000 scripts/bench-realm-online.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000000}
BIN=${REALMGUARD_BIN:-target/release/realmguard}
[ -x "$BIN" ] || cargo build --release --quiet

work=$(mktemp -d /tmp/rg-bench-realm-online.XXXXXX)
cleanup() {
    [ -n "${writer:-}" ] && kill "$writer" 2>/dev/null || true
    [ -n "${other:-}" ] && kill "$other" 2>/dev/null || true
    for h in a b; do REALMGUARD_HOME="$work/$h" "$BIN" embedded stop >/dev/null 2>&1 || true; done
    rm -rf "$work"
}
trap cleanup EXIT
start() { REALMGUARD_HOME="$work/$1" "$BIN" embedded start >/dev/null; REALMGUARD_HOME="$work/$1" "$BIN" embedded url; }
psql() { command psql -X -q -v ON_ERROR_STOP=1 "$@"; }
url_for() { echo "${1/\/postgres\?/\/$2?}"; }
A=$(start a)
psql "$A" -c "ALTER SYSTEM SET wal_level = logical"
REALMGUARD_HOME="$work/a" "$BIN" embedded stop >/dev/null
A=$(start a)
B=$(start b)
SRC=$(url_for "$A" src); DST=$(url_for "$B" dst)
psql "$A" -c "CREATE DATABASE src"; psql "$B" -c "CREATE DATABASE dst"
DATABASE_URL=$SRC "$BIN" migrate >/dev/null
DATABASE_URL=$DST "$BIN" migrate >/dev/null
psql "$SRC" <<SQL
INSERT INTO realms (id, name) VALUES ('w1', 'Realm w1'), ('w2', 'Realm w2');
INSERT INTO users (realm_id, email) SELECT 'w1', 'user' || i || '@w1' FROM generate_series(1, $N / 10) i;
INSERT INTO groups (realm_id, name) SELECT 'w1', 'group ' || i FROM generate_series(1, $N / 50) i;
INSERT INTO memberships (realm_id, user_id, group_id)
  SELECT 'w1', u.id, g.id
  FROM (SELECT id, row_number() OVER (ORDER BY id) - 1 AS rn FROM users WHERE realm_id = 'w1') u
  CROSS JOIN generate_series(0, 9) AS k
  JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS rn FROM groups WHERE realm_id = 'w1') g
    ON g.rn = (u.rn * 10 + k) % ($N / 50);
VACUUM ANALYZE;
SQL

# The writer: one psql session inserting a user of w1 every ~5 ms, going on after refusals.
( i=0; while :; do i=$((i+1)); echo "INSERT INTO users (realm_id, email) VALUES ('w1', 'live$i@w1');"; sleep 0.005; done ) \
    | command psql -X -q "$SRC" >/dev/null 2>"$work/writer.err" &
writer=$!
# The rest of the hub's traffic: another session writing to realm w2 the whole time.
( i=0; while :; do i=$((i+1)); echo "INSERT INTO users (realm_id, email) VALUES ('w2', 'other$i@w2');"; sleep 0.005; done ) \
    | command psql -X -q "$SRC" >/dev/null 2>"$work/other.err" &
other=$!
sleep 1
t0=$EPOCHREALTIME
DATABASE_URL=$SRC "$BIN" realm move --online --realm w1 --to "$DST" --format json >"$work/move.json" 2>"$work/move.err" \
    || { cat "$work/move.err" >&2; exit 1; }
t1=$EPOCHREALTIME
kill "$writer" "$other"; writer=; other=
live_dst=$(psql -tA "$DST" -c "SELECT count(*) FROM users WHERE realm_id = 'w1' AND email LIKE 'live%'")
refused=$(grep -c "is being moved" "$work/writer.err" || true)
echo "realm move --online: $N memberships, PostgreSQL $(psql -tA "$A" -c 'SHOW server_version')"
echo "  wall time $(awk "BEGIN {printf \"%.2f\", $t1 - $t0}") s; write pause (fence to verified target) $(jq .fence_ms "$work/move.json") ms"
echo "  writer: $live_dst rows on the target, $refused inserts refused by the fence (they were not committed)"
echo "  the other realm's writer: $(psql -tA "$SRC" -c "SELECT count(*) FROM users WHERE realm_id = 'w2'") rows committed, $(grep -c ERROR "$work/other.err" || true) errors"
echo "  source rows of w1 left: $(psql -tA "$SRC" -c "SELECT count(*) FROM users WHERE realm_id = 'w1'")"
