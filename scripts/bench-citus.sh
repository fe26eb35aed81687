#!/usr/bin/env bash
# Benchmark `realmguard citus distribute` and the realm router query on a local Citus cluster.
#
# Four throwaway clusters (fsync off, Unix sockets only): a plain single-node PostgreSQL, and a
# Citus coordinator with two workers. Both the single node and the coordinator get the project's
# migrations (through realmguard migrate) and the same data: REALMS realms (default 100), 100k
# users, 10k groups, MEMBERSHIPS memberships (default 1M), 500 statement types and 200k
# membership statements, every row in its user's realm.
#
# Figures printed:
#   - each distribute step's duration (the EXCLUSIVE lock it holds on its table for that long)
#     and the whole run, from `citus distribute --format json`;
#   - the router query (one realm, one membership by id) run by pgbench for SECONDS seconds
#     (-c 4 -j 2) on the single node and through the coordinator: tps, mean latency, the ratio.
#
# The timings are the server's: the debug binary is fine (REALMGUARD_BIN to choose another).
# Usage: scripts/bench-citus.sh [MEMBERSHIPS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."

MEMBERSHIPS=${1:-1000000}
SECONDS_RUN=${2:-10}
REALMS=${REALMS:-100}
BIN=${REALMGUARD_BIN:-target/debug/realmguard}
[[ -x $BIN ]] || cargo build --quiet
BIN=$(realpath "$BIN")
BINDIR=$(ls -d /usr/lib/postgresql/15/bin)
[[ -f $("$BINDIR/pg_config" --pkglibdir)/citus.so ]] || { echo "bench: Citus is not installed (../shared/citus/install.sh)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/rg-bench-citus.XXXXXX)
chmod 755 "$WORK"
as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[[ $(id -u) == 0 ]] && chown -R postgres "$WORK"
PORTS=(5591 5592 5593 5594) # single, coordinator, worker 1, worker 2
cleanup() {
  for p in "${PORTS[@]}"; do as_pg "$BINDIR/pg_ctl" -D "$WORK/d$p" -m immediate stop >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

for p in "${PORTS[@]}"; do
  as_pg "$BINDIR/initdb" -D "$WORK/d$p" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
  pre=""; [[ $p != 5591 ]] && pre="-c shared_preload_libraries=citus"
  as_pg "$BINDIR/pg_ctl" -D "$WORK/d$p" -l "$WORK/log$p" -w -o "-k $WORK -p $p -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=256MB -c max_wal_size=4GB $pre" start >/dev/null
done
psql_at() { local p=$1; shift; "$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$WORK" -p "$p" -U postgres -d bench "$@"; }
url() { printf 'postgres://postgres@localhost:%s/bench?host=%s' "$1" "$(printf %s "$WORK" | sed 's|/|%2F|g')"; }
for p in "${PORTS[@]}"; do "$BINDIR/psql" -X -q -h "$WORK" -p "$p" -U postgres -c 'CREATE DATABASE bench' 2>/dev/null; done
for p in 5592 5593 5594; do psql_at "$p" -c 'CREATE EXTENSION citus'; done
psql_at 5592 -c "SELECT citus_set_coordinator_host('$WORK', 5592)" -c "SELECT citus_add_node('$WORK', 5593)" -c "SELECT citus_add_node('$WORK', 5594)" >/dev/null

USERS=100000
NGROUPS=10000
DATA_SQL="
INSERT INTO realms (id, name) SELECT r::text, 'realm ' || r FROM generate_series(1, $REALMS) r;
INSERT INTO users (id, realm_id, email) SELECT g, (g % $REALMS + 1)::text, 'u' || g || '@x' FROM generate_series(1, $USERS) g;
INSERT INTO groups (id, realm_id, name) SELECT g, (g % $REALMS + 1)::text, 'g' || g FROM generate_series($REALMS, $NGROUPS + $REALMS - 1) g;
-- membership g: user u = g % USERS + 1 and a group of u's realm (same id modulo REALMS).
INSERT INTO memberships (id, realm_id, user_id, group_id)
  SELECT g, (u % $REALMS + 1)::text, u, (g / $USERS % ($NGROUPS / $REALMS)) * $REALMS + u % $REALMS + $REALMS
  FROM (SELECT g, g % $USERS + 1 AS u FROM generate_series(1, $MEMBERSHIPS) g) s;
INSERT INTO policy_statement_types (id, realm_id, code) SELECT g, (g % $REALMS + 1)::text, 'T' || g FROM generate_series(1, 5 * $REALMS) g;
INSERT INTO membership_statements (realm_id, membership_id, statement_type_id)
  SELECT m.realm_id, m.id, (m.realm_id::int - 1) + $REALMS FROM memberships m WHERE m.id % 5 = 0;
ANALYZE;"
for p in 5591 5592; do
  DATABASE_URL=$(url $p) "$BIN" migrate --dir migrations >/dev/null 2>&1
  echo "bench: loading $MEMBERSHIPS memberships on port $p" >&2
  psql_at "$p" -c "$DATA_SQL"
done
echo "bench: data: $(psql_at 5592 -At -c "SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))) FROM pg_class c WHERE relname IN ('users','groups','memberships','policy_statement_types','membership_statements')")"

echo "bench: citus plan (estimates):"
DATABASE_URL=$(url 5592) "$BIN" citus plan --shard-count 32 | grep -E '^│' || true
start=$(date +%s%N)
DATABASE_URL=$(url 5592) "$BIN" citus distribute --shard-count 32 --format json 2>/dev/null >"$WORK/dist.json"
total_ms=$(( ($(date +%s%N) - start) / 1000000 ))
python3 - "$WORK/dist.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for s in r["steps"]:
    print(f"bench: step {s['table']:32} {s['kind']:12} {s['state']:8} {s['duration_ms']:>7} ms  (EXCLUSIVE lock held)")
print(f"bench: distribute ok={r['ok']} steps total {sum(s['duration_ms'] for s in r['steps'])} ms, run {r['duration_ms']} ms")
PY
echo "bench: distribute wall time incl. connection and verify: ${total_ms} ms"
DATABASE_URL=$(url 5592) "$BIN" verify | tail -1

cat >"$WORK/router.sql" <<SQL
\set g random(1, $MEMBERSHIPS)
\set r (:g % $USERS + 1) % $REALMS + 1
SELECT id, user_id, group_id FROM memberships WHERE realm_id = :r::text AND id = :g;
SQL
chmod 644 "$WORK/router.sql"
for p in 5591 5592; do
  out=$("$BINDIR/pgbench" -n -h "$WORK" -p "$p" -U postgres -f "$WORK/router.sql" -T "$SECONDS_RUN" -c 4 -j 2 bench 2>&1)
  lat=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' <<<"$out")
  tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out")
  echo "bench: router query port $p: latency $lat ms, tps $tps"
  eval "lat_$p=$lat"
done
echo "bench: latency ratio coordinator / single node: $(python3 -c "print(round($lat_5592 / $lat_5591, 2))")"
psql_at 5592 -At -c "EXPLAIN SELECT id FROM memberships WHERE realm_id = '7' AND id = 7" | grep -i 'task count'
