#!/usr/bin/env bash
# Where one `realmguard migrate` spends its time, per migration and per phase (issue 21).
#
#   scripts/profile-migrate.sh                     # N=500 generated tables, guard on, fsync off
#   CORPUS=realistic N=200 scripts/profile-migrate.sh
#   ARGS=--no-verify scripts/profile-migrate.sh    # the same without the guard
#   FSYNC=on scripts/profile-migrate.sh
#
# A throwaway embedded cluster logs every statement's server time (log_min_duration_statement = 0)
# for one run; the log is sorted into phases by what each statement is, and what the server did
# not account for (network, client work, waiting) is the wall time minus the server's. The
# server's own figures include its parse and plan time; logging itself adds a little to each.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-500}
CORPUS=${CORPUS:-tables}
FSYNC=${FSYNC:-off}
ARGS=${ARGS:-}
BIN=${REALMGUARD_BIN:-target/release/realmguard}
[ -x "$BIN" ] || cargo build --release --quiet

work=$(mktemp -d /tmp/rg-profile-migrate.XXXXXX)
export REALMGUARD_HOME="$work/home"
cleanup() { "$BIN" embedded stop >/dev/null 2>&1 || true; [ -n "${KEEP:-}" ] || rm -rf "$work"; }
trap cleanup EXIT
"$BIN" embedded start >/dev/null
base=$("$BIN" embedded url)
log=$("$BIN" --format json embedded status | python3 -c 'import json,sys; print(json.load(sys.stdin)["log_file"])')
psql -X -q "$base" -c "ALTER SYSTEM SET fsync = $FSYNC" -c "ALTER SYSTEM SET synchronous_commit = $FSYNC" \
  -c "ALTER SYSTEM SET log_line_prefix = '%m [%p] db=%d '" -c "SELECT pg_reload_conf()" >/dev/null

dir="$work/migrations"
if [ "$CORPUS" = realistic ]; then
  python3 scripts/gen-realistic-migrations.py "$dir" "$N"
else
  scripts/gen-table-migrations.sh "$dir" "$N"
fi
n_files=$(ls "$dir"/*.sql | wc -l)

# Warm the server once on another database, so the profiled run is a steady one (FIRST=1: not).
if [ "${FIRST:-0}" != 1 ]; then
  psql -X -q "$base" -c "CREATE DATABASE warm" >/dev/null
  DATABASE_URL="${base/\/postgres\?/\/warm?}" "$BIN" migrate --dir "$dir" $ARGS >/dev/null 2>&1
fi
psql -X -q "$base" -c "CREATE DATABASE prof" -c "ALTER DATABASE prof SET log_min_duration_statement = 0" >/dev/null
url="${base/\/postgres\?/\/prof?}"
start_line=$(wc -l < "$log")
t0=$(date +%s.%N)
DATABASE_URL="$url" "$BIN" migrate --dir "$dir" $ARGS >/dev/null 2>"$work/stderr" || { cat "$work/stderr" >&2; exit 1; }
t1=$(date +%s.%N)
psql -X -q "$base" -c "ALTER SYSTEM RESET log_line_prefix" -c "SELECT pg_reload_conf()" >/dev/null

tail -n +"$((start_line + 1))" "$log" > "$work/run.log"
python3 - "$work/run.log" "$n_files" "$(awk "BEGIN {print ($t1 - $t0) * 1000}")" "$CORPUS" "$FSYNC" "${ARGS:-guard on}" <<'PY'
import re, sys
path, n, wall, corpus, fsync, mode = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
# A log entry starts with the prefix; continuation lines (multi-line statements) follow it.
entries, cur = [], None
for line in open(path):
    if re.match(r"^\d{4}-\d\d-\d\d ", line):
        if cur: entries.append(cur)
        cur = line
    elif cur is not None:
        cur += line
if cur: entries.append(cur)

def phase(text):
    t = text.lower()
    # The runner sends each migration as one batch: BEGIN, its settings, the file, the ledger row
    # and the guard's catalog read (or COMMIT), with the guard on headed by the previous
    # migration's COMMIT; see docs/architecture.md, "The guard".
    if re.match(r"^(commit;\s*)?begin", t) and "realmguard.migrations" in t:
        return "migration batch (COMMIT before + file + ledger row + guard read)"
    if "pg_advisory" in t: return "advisory lock"
    if "pg_locks" in t and "pg_class" in t: return "guard: scoped catalog read"
    if "set_config('enable_seqscan'" in t: return "guard: scoped catalog read"
    if re.match(r"^\s*(commit|rollback)\b", t): return "commit"
    if "schema_migrations" in t or "realmguard" in t: return "ledger reads / set-up"
    return "other statements"

phases = {}
for e in entries:
    if "db=prof " not in e: continue
    m = re.search(r"duration: ([\d.]+) ms\s+(?:statement|execute [^:]*|parse [^:]*|bind [^:]*): (.*)", e, re.S)
    if not m: continue
    ms, text = float(m.group(1)), m.group(2).strip()
    k = phase(text)
    c, s = phases.get(k, (0, 0.0))
    phases[k] = (c + 1, s + ms)

server = sum(s for _, s in phases.values())
print(f"migrate profile: {n} migrations ({corpus} corpus), fsync {fsync}, {mode}; wall {wall:.0f} ms = {wall / n:.3f} ms per migration")
print(f"{'phase':54} {'messages':>8} {'total ms':>9} {'ms/migration':>13} {'share':>6}")
for k, (c, s) in sorted(phases.items(), key=lambda kv: -kv[1][1]):
    print(f"{k:54} {c:8d} {s:9.1f} {s / n:13.3f} {100 * s / wall:5.1f}%")
rest = wall - server
print(f"{'not in the server (round trips, client, process start)':54} {'':8} {rest:9.1f} {rest / n:13.3f} {100 * rest / wall:5.1f}%")
PY
