#!/usr/bin/env bash
# Where the backfill's writer p99 goes on PostgreSQL 15: the concurrent btree build's fsync.
#
# bench-backfill.sh shows the writer's slow transactions falling inside the concurrent builds of
# the memberships indexes. This script isolates one: on memberships (N rows, realm_id added) it
# builds the unique (id, realm_id) index with CREATE INDEX CONCURRENTLY, as realmguard's step
# does (no parallel workers, the best wal_compression the server has), ROUNDS times with the
# server's fsync on and ROUNDS times with it off, interleaved, under the same rate-limited writer
# (the old application's SQL, scripts/legacy-writer.sql). It prints the writer's p50, p99 and max
# over the transactions that overlapped a build of each kind, against its idle p99.
#
# If fsync off removes most of the slow transactions, the cost is the disk flushes the build
# forces (its WAL and, before PostgreSQL 17, the immediate sync of the whole new index file at the
# end of the build), which the application's commits queue behind, and not CPU or locks.
#
# It runs only on a throwaway embedded cluster (it turns fsync off with ALTER SYSTEM; never
# point it at a real server). Usage:
#   scripts/bench-index-fsync.sh
#   REALMGUARD_PG_BINDIR=/usr/lib/postgresql/17/bin scripts/bench-index-fsync.sh
# Knobs: N (1,000,000), ROUNDS (10), WRITER_RATE (100), WRITER_CLIENTS (2), IDLE_SECS (20),
#        KEEP=1 keeps the work dir.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-1000000}
ROUNDS=${ROUNDS:-10}
WRITER_RATE=${WRITER_RATE:-100}
WRITER_CLIENTS=${WRITER_CLIENTS:-2}
IDLE_SECS=${IDLE_SECS:-20}
BIN=${REALMGUARD_BIN:-target/release/realmguard}
if [ ! -x "$BIN" ]; then
    cargo build --release
fi

WORK=$(mktemp -d /tmp/rg-bench-fsync.XXXXXX)
chmod 755 "$WORK"
export REALMGUARD_HOME=$WORK/home
cleanup() {
    pkill -TERM -f -- "--log-prefix=$WORK/writer" 2>/dev/null || true
    "$BIN" embedded stop >/dev/null 2>&1 || true
    [ -n "${KEEP:-}" ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
"$BIN" embedded start >/dev/null
URL=$("$BIN" embedded url)
psql() { command psql -X -q -v ON_ERROR_STOP=1 "$URL" "$@"; }
# The best WAL compression the server was built with, as realmguard's step picks it.
WALC=$(psql -At -c "SELECT m FROM unnest(ARRAY['zstd', 'lz4', 'pglz']) WITH ORDINALITY AS t (m, o)
    WHERE m = ANY ((SELECT enumvals FROM pg_settings WHERE name = 'wal_compression')::text[]) ORDER BY o LIMIT 1")
echo "== server: $(psql -At -c 'SHOW server_version'), wal_compression = $WALC"

echo "== building memberships: $N rows"
psql -c "SET legacy.n = $N" -f schema/legacy.sql -f scripts/gen-legacy.sql >/dev/null
psql -c "ALTER TABLE memberships ADD COLUMN realm_id text NOT NULL DEFAULT 'hub'" \
    -c "VACUUM ANALYZE" -c "CHECKPOINT"
NUSERS=$(psql -At -c "SELECT max(id) FROM users")
NGROUPS=$(psql -At -c "SELECT max(id) FROM groups")

pgbench -n -M prepared -f scripts/legacy-writer.sql -D nusers="$NUSERS" -D ngroups="$NGROUPS" -D n="$N" \
    -c "$WRITER_CLIENTS" -j 1 -R "$WRITER_RATE" -T 86400 -l --log-prefix="$WORK/writer" "$URL" \
    >/dev/null 2>"$WORK/pgbench.err" &
WRITER_PID=$!
sleep 3
echo "== writer idle: ${IDLE_SECS}s at $WRITER_RATE tps"
echo "idle $(date +%s.%N)" >"$WORK/marks"
sleep "$IDLE_SECS"
echo "idle $(date +%s.%N)" >>"$WORK/marks"

echo "== $ROUNDS rounds: one concurrent build with fsync on, one with fsync off"
for r in $(seq 1 "$ROUNDS"); do
    for fsync in on off; do
        psql -c "ALTER SYSTEM SET fsync = $fsync" -c "SELECT pg_reload_conf()" >/dev/null
        sleep 0.5 # the reload reaches every backend
        psql -At -c "SET max_parallel_maintenance_workers = 0" -c "SET wal_compression = $WALC" \
            -c "SELECT extract(epoch FROM clock_timestamp())" \
            -c "CREATE UNIQUE INDEX CONCURRENTLY build_probe ON memberships (id, realm_id)" \
            -c "SELECT extract(epoch FROM clock_timestamp())" | paste -sd' ' | sed "s/^/fsync_$fsync /" >>"$WORK/marks"
        psql -c "DROP INDEX build_probe"
        sleep 1.5 # the writer settles between builds
    done
done
psql -c "ALTER SYSTEM RESET fsync" -c "SELECT pg_reload_conf()" >/dev/null
pkill -TERM -f -- "--log-prefix=$WORK/writer" || true
wait "$WRITER_PID" 2>/dev/null || true
if grep -qiE "error|abort" "$WORK/pgbench.err"; then
    echo "the writer failed:"; tail -3 "$WORK/pgbench.err"; exit 2
fi

python3 - "$WORK" <<'PY'
import collections, glob, sys
work = sys.argv[1]
tx = []  # (start, end, latency ms) of each writer transaction, from pgbench's log
for f in glob.glob(f"{work}/writer.[0-9]*"):
    for line in open(f):
        p = line.split()
        if len(p) >= 6 and p[2].isdigit():
            end, lat = int(p[4]) + int(p[5]) / 1e6, int(p[2]) / 1e3
            tx.append((end - lat / 1e3, end, lat))
marks = [l.split() for l in open(f"{work}/marks")]
def pct(v, q):  # the same rank as bench-backfill.sh: the int(n * q)-th smallest
    return v[max(int(len(v) * q), 1) - 1]
idle = sorted(l for _, e, l in tx if float(marks[0][1]) <= e <= float(marks[1][1]))
idle99 = pct(idle, .99)
print(f"writer idle          : {len(idle):5d} tx  p50 {pct(idle, .5):6.2f} ms  p99 {idle99:6.2f} ms")
during, secs, builds = collections.defaultdict(list), collections.Counter(), collections.Counter()
for kind, a, b in ((m[0], float(m[1]), float(m[2])) for m in marks[2:]):
    secs[kind] += b - a
    builds[kind] += 1
    during[kind] += [l for s, e, l in tx if e >= a and s <= b]
for kind in sorted(during):
    v = sorted(during[kind])
    slow = sum(l > 3 * idle99 for l in v)
    print(f"during builds, {kind:<9}: {len(v):5d} tx  p50 {pct(v, .5):6.2f} ms  p99 {pct(v, .99):6.2f} ms"
          f"  max {v[-1]:6.2f} ms  over 3x idle p99: {slow:3d}  p99 / idle p99: {pct(v, .99) / idle99:5.2f}"
          f"  ({builds[kind]} builds, {secs[kind] / builds[kind]:.2f} s each)")
PY
