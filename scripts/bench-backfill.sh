#!/usr/bin/env bash
# Benchmark `realmguard backfill run` on the legacy schema while an application keeps writing.
#
# Builds the legacy database with N memberships (default 1,000,000; N/10 users, N/50 groups,
# N/10 statements), copies it, and reports:
#   - the offline upper bound: the same derivation as ONE single-statement UPDATE per table on the
#     identical copy (no writer), rows/s;
#   - the backfill's wall time and rows/s with a concurrent writer, its fill rows/s (time inside
#     batches), and both ratios to the single UPDATE. On the legacy schema as shipped no row is
#     rewritten (every old row's realm is certain, so it lives in the catalog: see README), and
#     the whole run is what compares with the UPDATE; REWRITE=1 makes memberships.group_id
#     nullable, so memberships and membership_statements (1.1M rows) are filled row by row in
#     keyset batches, the path for rows whose realm is not certain;
#   - the writer's tps, p50, p99 and max latency without (baseline) and with the backfill running,
#     and its error count;
#   - the writer's p99, max and count of transactions over 3x the baseline p99 per backfill step
#     (step windows from realmguard.backfill_steps), to say which step a p99 miss comes from.
# Targets (issue 5): fill ≥ 0.5× single-UPDATE rows/s, writer p99 ≤ 3× baseline, no writer
# latency above 250 ms, zero writer errors.
#   - beside the writer, a prepared `SELECT *` reader (issue 22: scripts/legacy-star-reader.sql,
#     pgbench -M prepared, PREPARED_CLIENTS sessions at 20 tps): how many of its sessions got
#     SQLSTATE 0A000 when the column step changed the result type, reported apart from the
#     writer's errors, which must stay at zero. pgbench ends a client at its first error, so the
#     count is of sessions hit (at most PREPARED_CLIENTS), one error each.
#
# The writer is pgbench running the OLD application's SQL (no realm_id anywhere), rate-limited
# (WRITER_RATE tps over WRITER_CLIENTS clients) so latencies measure waiting, not a saturated CPU.
# One pgbench session runs from before the baseline to after the backfill (no reconnects inside
# a window); each transaction counts in the window (baseline, backfill, after) it completed in.
#
# Usage: scripts/bench-backfill.sh            (throwaway embedded cluster under a temp dir)
#        DATABASE_URL=postgres://… scripts/bench-backfill.sh   (creates bench_* databases there)
# Knobs: N, BATCH_MS (default 20ms here; realmguard's own default is 100ms: a writer touching a row
#        of the batch in flight waits up to one batch, and at 100 ms that shows in its p99),
#        LOCK_TIMEOUT (default 100ms here; realmguard's 500ms default lets a lock step that waits
#        hold the writer's queries up to 500 ms, over the 250 ms target), WRITER_RATE (100),
#        WRITER_CLIENTS (2), PREPARED_CLIENTS (2; 0: no prepared `SELECT *` reader),
#        BASELINE_SECS (30: the p99 of 3,000 transactions, steadier than 1,500),
#        REWRITE=1 (see above),
#        HOLDER_MS=60: during the backfill a second application session, 4 times a second, holds
#        a row of memberships (and so its table lock) for that long in one transaction: a lock
#        step on memberships may then queue behind it, and the writer behind the step,
#        RUN_ARGS="--max-replication-lag 64MB": more options for `backfill run`,
#        KEEP=1 keeps the work dir (pgbench logs, run.json, step timings, the cluster),
#        RUNS=K: K whole runs (each its own database and writer), then the writer's p50/p99 over
#        all K backfill windows pooled against all K baselines. The legacy schema converts in
#        ~3 s, ~300 writer transactions, so one run's p99 is its 3rd slowest transaction; pooling
#        estimates the same percentile from K times the sample. Each run's figures print too.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-1000000}
BATCH_MS=${BATCH_MS:-20ms}
LOCK_TIMEOUT=${LOCK_TIMEOUT:-100ms}
WRITER_RATE=${WRITER_RATE:-100}
WRITER_CLIENTS=${WRITER_CLIENTS:-2}
PREPARED_CLIENTS=${PREPARED_CLIENTS:-2}
HOLDER_MS=${HOLDER_MS:-}
BASELINE_SECS=${BASELINE_SECS:-30}
BIN=${REALMGUARD_BIN:-target/release/realmguard}
if [ ! -x "$BIN" ]; then
    cargo build --release
fi

if [ "${RUNS:-1}" -gt 1 ] && [ -z "${POOL_DIR:-}" ]; then
    POOL_DIR=$(mktemp -d /tmp/rg-bench-pool.XXXXXX)
    trap 'rm -rf "$POOL_DIR"' EXIT
    for i in $(seq 1 "$RUNS"); do
        echo "######## run $i of $RUNS"
        POOL_DIR=$POOL_DIR RUN_INDEX=$i RUNS=1 REALMGUARD_BIN=$BIN scripts/bench-backfill.sh
        echo
    done
    python3 - "$POOL_DIR" <<'PY'
import glob, sys
d = sys.argv[1]
def load(kind):
    return {f: sorted(float(l) for l in open(f) if l.strip()) for f in sorted(glob.glob(f"{d}/{kind}.*"))}
def p(v, q):  # the same rank as the single-run figures: the int(n * q)-th smallest
    return v[max(int(len(v) * q), 1) - 1]
base, back = load("baseline"), load("backfill")
print(f"== pooled over {len(back)} runs")
for b, w in zip(base.values(), back.values()):
    print(f"  run: baseline p99 {p(b, .99):5.2f} ms, backfill p99 {p(w, .99):5.2f} ms ({len(w)} tx), ratio {p(w, .99) / p(b, .99):.2f}")
b = sorted(x for v in base.values() for x in v)
w = sorted(x for v in back.values() for x in v)
print(f"writer baseline, pooled: p50 {p(b, .5):.2f} ms  p99 {p(b, .99):.2f} ms  max {b[-1]:.2f} ms  ({len(b)} tx)")
print(f"writer backfill, pooled: p50 {p(w, .5):.2f} ms  p99 {p(w, .99):.2f} ms  max {w[-1]:.2f} ms  ({len(w)} tx)")
print(f"writer p99 ratio, pooled: {p(w, .99) / p(b, .99):.2f}   (target <= 3)")
PY
    exit 0
fi

WORK=$(mktemp -d /tmp/rg-bench-backfill.XXXXXX)
chmod 755 "$WORK"
cleanup() {
    pkill -TERM -f -- "--log-prefix=$WORK/writer" 2>/dev/null || true
    pkill -TERM -f -- "-f $WORK/holder.sql" 2>/dev/null || true
    [ -z "${STAR_PID:-}" ] || kill -TERM "$STAR_PID" 2>/dev/null || true
    if [ -n "${EMBEDDED_HOME:-}" ]; then
        REALMGUARD_HOME=$EMBEDDED_HOME "$BIN" embedded stop >/dev/null 2>&1 || true
        [ -n "${KEEP:-}" ] || rm -rf "$EMBEDDED_HOME"
    fi
    [ -n "${KEEP:-}" ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "${DATABASE_URL:-}" ]; then
    EMBEDDED_HOME=$WORK/home
    export REALMGUARD_HOME=$EMBEDDED_HOME
    "$BIN" embedded start >/dev/null
    ADMIN_URL=$("$BIN" embedded url)
    unset REALMGUARD_HOME
else
    ADMIN_URL=$DATABASE_URL
fi

# The same server, another database (works for URLs with ?host=… query strings too).
db_url() {
    python3 - "$ADMIN_URL" "$1" <<'EOF'
import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1])
print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))
EOF
}
LIVE=$(db_url bench_live)
COPY=$(db_url bench_copy)
psql() { command psql -X -q -v ON_ERROR_STOP=1 "$@"; }

echo "== building the legacy database: $N memberships"
psql "$ADMIN_URL" -c "DROP DATABASE IF EXISTS bench_live" -c "DROP DATABASE IF EXISTS bench_copy" \
    -c "CREATE DATABASE bench_live" 2>/dev/null
t0=$(date +%s.%N)
psql "$LIVE" -c "SET legacy.n = $N" -f schema/legacy.sql -f scripts/gen-legacy.sql >/dev/null
if [ -n "${REWRITE:-}" ]; then
    psql "$LIVE" -c "ALTER TABLE memberships ALTER COLUMN group_id DROP NOT NULL"
fi
psql "$LIVE" -c "VACUUM ANALYZE" -c "CHECKPOINT"
echo "   built in $(echo "$(date +%s.%N) - $t0" | bc) s"
psql "$ADMIN_URL" -c "CREATE DATABASE bench_copy TEMPLATE bench_live"

NUSERS=$(psql "$LIVE" -At -c "SELECT max(id) FROM users")
NGROUPS=$(psql "$LIVE" -At -c "SELECT max(id) FROM groups")
ROWS_TOTAL=$(psql "$LIVE" -At -c "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM groups)
    + (SELECT count(*) FROM memberships) + (SELECT count(*) FROM membership_statements)")

echo "== offline upper bound: one single-statement UPDATE per table on the identical copy"
psql "$COPY" -c "ALTER TABLE users ADD COLUMN realm_id text" -c "ALTER TABLE groups ADD COLUMN realm_id text" \
    -c "ALTER TABLE memberships ADD COLUMN realm_id text" -c "ALTER TABLE membership_statements ADD COLUMN realm_id text"
t0=$(date +%s.%N)
psql "$COPY" \
    -c "UPDATE groups SET realm_id = 'hub'" \
    -c "UPDATE memberships c SET realm_id = p.realm_id FROM groups p WHERE p.id = c.group_id" \
    -c "UPDATE membership_statements c SET realm_id = p.realm_id FROM memberships p WHERE p.id = c.membership_id" \
    -c "UPDATE users SET realm_id = 'hub'"
SINGLE_SECS=$(echo "$(date +%s.%N) - $t0" | bc)
psql "$ADMIN_URL" -c "DROP DATABASE bench_copy"
psql "$LIVE" -c "CHECKPOINT"

# One writer session for the whole measurement, as an application's connection pool would be:
# windows are cut from its log by time. (Restarting pgbench per window made each new
# connection's first transactions, 3-4 ms while its caches warm, count against the backfill.)
pgbench -n -M prepared -f scripts/legacy-writer.sql -D nusers="$NUSERS" -D ngroups="$NGROUPS" -D n="$N" \
    -c "$WRITER_CLIENTS" -j 1 -R "$WRITER_RATE" \
    -T 86400 -l --log-prefix="$WORK/writer" "$LIVE" >"$WORK/pgbench.out" 2>"$WORK/pgbench.err" &
WRITER_PID=$!
if [ "$PREPARED_CLIENTS" -gt 0 ]; then
    pgbench -n -M prepared -f scripts/legacy-star-reader.sql -D n="$N" \
        -c "$PREPARED_CLIENTS" -j 1 -R 20 -T 86400 "$LIVE" >"$WORK/star.out" 2>"$WORK/star.err" &
    STAR_PID=$!
fi
# Sessions of the prepared `SELECT *` reader that got 0A000, and its other errors.
star_errors() {
    local hit all
    hit=$(grep -c "cached plan must not change result type" "$WORK/star.err" 2>/dev/null || true)
    all=$(grep -ciE "^pgbench: error: client" "$WORK/star.err" 2>/dev/null || true)
    echo "${hit:-0} $(( ${all:-0} - ${hit:-0} ))"
}
stop_writer() { # pgbench flushes its log when it exits; SIGTERM loses only the last buffered lines
    pkill -TERM -f -- "--log-prefix=$WORK/writer" || true
    wait "$WRITER_PID" 2>/dev/null || true
}
# Errors pgbench reported (an aborted client says so on stderr) plus transactions its log marks
# as failed (PostgreSQL 15+ logs those with "failed" in place of the latency).
writer_errors() {
    echo $(( $(grep -ciE "error|abort" "$WORK/pgbench.err" || true) \
        + $(cat "$WORK"/writer.[0-9]* 2>/dev/null | awk 'NF >= 6 && $3 !~ /^[0-9]+$/' | wc -l) ))
}

# "completion time (epoch s) latency (ms)" of each writer transaction that completed in [$1, $2].
timed_samples() {
    cat "$WORK"/writer.[0-9]* 2>/dev/null | awk -v a="$1" -v b="$2" 'NF >= 6 && $3 ~ /^[0-9]+$/ { t = $5 + $6 / 1e6; if (t >= a && t <= b) printf "%.6f %.3f\n", t, $3 / 1000 }'
}

# Latency (ms) of each writer transaction that completed in [$1, $2].
samples() {
    timed_samples "$1" "$2" | cut -d' ' -f2
}

# p50 p99 max (ms) and count of the writer's transactions that completed in [$1, $2].
latencies() {
    samples "$1" "$2" | sort -n | awk '{ v[NR] = $1 } END {
            if (NR == 0) { print "0 0 0 0"; exit }
            p50 = v[int(NR * 0.50) > 0 ? int(NR * 0.50) : 1]; p99 = v[int(NR * 0.99) > 0 ? int(NR * 0.99) : 1]
            printf "%.2f %.2f %.2f %d\n", p50, p99, v[NR], NR }'
}

sleep 2 # connections made and statements prepared before anything counts
echo "== writer baseline: ${BASELINE_SECS}s at $WRITER_RATE tps, $WRITER_CLIENTS clients, no backfill"
b0=$(date +%s.%N)
sleep "$BASELINE_SECS"
b1=$(date +%s.%N)
BASE_ERRORS=$(writer_errors)

echo "== backfill run (batch $BATCH_MS, lock timeout $LOCK_TIMEOUT) with the writer running"
if [ -n "$HOLDER_MS" ]; then
    cat >"$WORK/holder.sql" <<EOF
\\set m random(1, $N)
BEGIN;
UPDATE memberships SET created_at = created_at WHERE id = :m;
SELECT pg_sleep($HOLDER_MS / 1000.0);
END;
EOF
    pgbench -n -f "$WORK/holder.sql" -c 1 -R 4 -T 86400 "$LIVE" >/dev/null 2>&1 &
    HOLDER_PID=$!
fi
w0=$(date +%s.%N)
DATABASE_URL=$LIVE "$BIN" --config schema/legacy.toml --format json backfill run \
    --batch-ms "$BATCH_MS" --lock-timeout "$LOCK_TIMEOUT" ${RUN_ARGS:-} >"$WORK/run.json" 2>"$WORK/run.err" || {
    echo "backfill failed:"; tail -5 "$WORK/run.err"; stop_writer; exit 2; }
w1=$(date +%s.%N)
if [ -n "$HOLDER_MS" ]; then
    pkill -TERM -f -- "-f $WORK/holder.sql" || true
    wait "$HOLDER_PID" 2>/dev/null || true
fi
RUN_ERRORS=$(( $(writer_errors) - BASE_ERRORS ))

# The same writer on after the backfill: the machine's noise level, and what the fill triggers
# (which stay until the application writes realm_id itself) cost the old SQL.
echo "== writer after the backfill: ${BASELINE_SECS}s, triggers in place"
sleep 1
a0=$(date +%s.%N)
sleep "$BASELINE_SECS"
a1=$(date +%s.%N)
sleep $((1 + 200 / WRITER_RATE)) # the lines SIGTERM may lose (one stdio buffer) are after a1
if ! pgrep -f -- "--log-prefix=$WORK/writer" >/dev/null; then
    echo "the writer stopped before the end of the measurement:"; tail -3 "$WORK/pgbench.err"; exit 2
fi
AFTER_ERRORS=$(( $(writer_errors) - BASE_ERRORS - RUN_ERRORS ))
stop_writer
read -r STAR_HIT STAR_OTHER < <(star_errors)
if [ -n "${STAR_PID:-}" ]; then
    kill -TERM "$STAR_PID" 2>/dev/null || true
    wait "$STAR_PID" 2>/dev/null || true
fi
read -r B50 B99 BMAX BN < <(latencies "$b0" "$b1")
read -r D50 D99 DMAX DN < <(latencies "$w0" "$w1")
read -r A50 A99 AMAX AN < <(latencies "$a0" "$a1")

if [ -n "${POOL_DIR:-}" ]; then # RUNS=K: this run's samples for the pooled figures
    samples "$b0" "$b1" >"$POOL_DIR/baseline.${RUN_INDEX:-$$}"
    samples "$w0" "$w1" >"$POOL_DIR/backfill.${RUN_INDEX:-$$}"
fi

WALL=$(echo "$w1 - $w0" | bc)
read -r FILL_ROWS FILL_MS < <(python3 - "$WORK/run.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
print(sum(f["rows_done"] for f in d["fills"]), sum(f["fill_ms"] for f in d["fills"]))
EOF
)
NULLS=$(psql "$LIVE" -At -c "SELECT (SELECT count(*) FROM users WHERE realm_id IS NULL)
    + (SELECT count(*) FROM groups WHERE realm_id IS NULL)
    + (SELECT count(*) FROM memberships WHERE realm_id IS NULL)
    + (SELECT count(*) FROM membership_statements WHERE realm_id IS NULL)")

# Writer latency per backfill step: each step's window is [done_at - duration_ms, done_at] from
# the ledger; a writer transaction belongs to the step it completed in. Attributes a p99 miss.
psql "$LIVE" -At -F ' ' -c "SELECT seq, extract(epoch FROM done_at) - duration_ms / 1000.0,
    extract(epoch FROM done_at), title FROM realmguard.backfill_steps
    WHERE done_at IS NOT NULL ORDER BY seq" >"$WORK/steps.txt"
timed_samples "$w0" "$w1" >"$WORK/during.txt"
echo
echo "== writer latency per step (writer transactions that completed inside the step)"
python3 - "$WORK/steps.txt" "$WORK/during.txt" "$B99" <<'PY'
import sys
steps = [l.split(" ", 3) for l in open(sys.argv[1]).read().splitlines() if l]
tx = [tuple(map(float, l.split())) for l in open(sys.argv[2]) if l.strip()]
limit = 3 * float(sys.argv[3])
print(f"{'step':<60} {'secs':>6} {'tx':>5} {'p99 ms':>7} {'max ms':>7} {'>3x p99':>7}")
for seq, a, b, title in steps:
    a, b = float(a), float(b)
    lat = sorted(l for t, l in tx if a <= t <= b)
    if not lat:
        continue
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    slow = sum(1 for l in lat if l > limit)
    print(f"{seq:>3} {title[:56]:<56} {b - a:6.2f} {len(lat):5d} {p99:7.2f} {lat[-1]:7.2f} {slow:7d}")
# The rest of the run: connecting, planning, preflight, the end check, and the gaps between steps.
windows = [(float(a), float(b)) for _, a, b, _ in steps]
rest = sorted(l for t, l in tx if not any(a <= t <= b for a, b in windows))
if rest:
    p99 = rest[min(len(rest) - 1, int(len(rest) * 0.99))]
    slow = sum(1 for l in rest if l > limit)
    print(f"    {'(outside steps: plan, preflight, end check, gaps)':<56} {'':>6} {len(rest):5d} {p99:7.2f} {rest[-1]:7.2f} {slow:7d}")
PY

python3 - <<EOF
single_rows_s = $ROWS_TOTAL / $SINGLE_SECS
fill_s = $FILL_MS / 1000
fill_rows_s = $FILL_ROWS / fill_s if fill_s else 0
wall_rows_s = $ROWS_TOTAL / $WALL
base_tps = $BN / ($b1 - $b0)
run_tps = $DN / $WALL
print()
print("== results (N = $N memberships, $ROWS_TOTAL rows in 4 tables)")
print(f"single-statement UPDATEs (offline, no writer): {$SINGLE_SECS:.2f} s, {single_rows_s:,.0f} rows/s")
print(f"backfill wall time (all steps, writer running): {$WALL:.2f} s, {wall_rows_s:,.0f} rows/s overall")
if $FILL_ROWS:
    print(f"backfill fill phase: $FILL_ROWS rows in {fill_s:.2f} s of batches, {fill_rows_s:,.0f} rows/s")
    print(f"ratio fill / single UPDATE: {fill_rows_s / single_rows_s:.2f}   (target >= 0.50)")
    print(f"ratio whole run / single UPDATE: {wall_rows_s / single_rows_s:.2f}")
else:
    print("backfill fill phase: no row rewritten (old rows take the realm from the catalog)")
    print(f"ratio whole run / single UPDATE: {wall_rows_s / single_rows_s:.2f}   (target >= 0.50)")
print(f"writer baseline : {base_tps:6.1f} tps  p50 {$B50:7.2f} ms  p99 {$B99:7.2f} ms  max {$BMAX:7.2f} ms  ({$BN} tx, errors $BASE_ERRORS)")
print(f"writer backfill : {run_tps:6.1f} tps  p50 {$D50:7.2f} ms  p99 {$D99:7.2f} ms  max {$DMAX:7.2f} ms  ({$DN} tx, errors $RUN_ERRORS)")
after_tps = $AN / ($a1 - $a0)
print(f"writer after    : {after_tps:6.1f} tps  p50 {$A50:7.2f} ms  p99 {$A99:7.2f} ms  max {$AMAX:7.2f} ms  ({$AN} tx, errors $AFTER_ERRORS)")
p99r = $D99 / $B99 if $B99 else float('inf')
print(f"writer p99 ratio: {p99r:.2f}   (target <= 3)   max latency target <= 250 ms   errors target 0")
print(f"rows left without realm_id: $NULLS")
if $PREPARED_CLIENTS:
    print(f"prepared SELECT * reader: $STAR_HIT of $PREPARED_CLIENTS sessions got SQLSTATE 0A000 (cached plan must not change result type), other errors $STAR_OTHER")
EOF
