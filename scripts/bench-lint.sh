#!/usr/bin/env bash
# Lint throughput: realmguard vs squawk on the same generated corpus, in the same run.
#
#   scripts/bench-lint.sh [FILES] [RUNS]     (defaults: 2000 files, best of 3 runs)
#
# Generates FILES migration files with a realistic mix of statements (scripts/gen-migrations.py)
# and a real-world-shaped history of HISTORY files (default 300: functions, triggers, DO blocks;
# scripts/gen-realistic-migrations.py), lints each directory with each tool RUNS times (realmguard
# with every rule on), and prints the best files/second of each, the ratio and the share of
# statements realmguard could not parse. Also reports `realmguard check` wall time on the project's own migrations (embedded
# cluster, started beforehand so its start-up is not counted).
set -euo pipefail
cd "$(dirname "$0")/.."

FILES=${1:-2000}
RUNS=${2:-3}
HISTORY=${HISTORY:-300}
BIN=${REALMGUARD_BIN:-target/release/realmguard}
if [[ ! -x $BIN ]]; then
    cargo build --release
fi
if ! command -v squawk >/dev/null; then
    pip install --quiet squawk-cli
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
python3 scripts/gen-migrations.py "$WORK/migrations" "$FILES"

now() { date +%s.%N; }

# best_of CMD...: the fastest of $RUNS wall times, in seconds. Exit status ignored: both tools exit
# non-zero when they find something, which they do.
best_of() {
    local best=""
    for _ in $(seq "$RUNS"); do
        local t0 t1
        t0=$(now)
        "$@" >/dev/null 2>&1 || true
        t1=$(now)
        best=$(python3 -c "import sys; a=float(sys.argv[1])-float(sys.argv[2]); b=sys.argv[3]; print(a if b=='' or a<float(b) else b)" "$t1" "$t0" "$best")
    done
    echo "$best"
}

ABS_BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
# Every rule on: the groups cover every lint rule, the opt-in ones included.
ALL=(--include locking,compatibility,style,realm,correctness)

# bench DIR LABEL: findings of both tools, then the best wall time of each over DIR.
bench() {
    local dir=$1 label=$2
    local n bytes
    n=$(ls "$dir" | wc -l)
    bytes=$(cat "$dir"/*.sql | wc -c)
    (cd "$(dirname "$dir")" && "$ABS_BIN" lint "${ALL[@]}" --format json "$(basename "$dir")" >"$WORK/rg.json" 2>/dev/null) || true
    (cd "$(dirname "$dir")" && squawk --reporter json "$(basename "$dir")"/*.sql >"$WORK/sq.json" 2>/dev/null) || true
    python3 - "$WORK/rg.json" "$WORK/sq.json" "$label" "$n" "$bytes" <<'PY'
import json, sys
rg = json.load(open(sys.argv[1]))
try:
    sq = json.load(open(sys.argv[2]))
    sq_n = len(sq) if isinstance(sq, list) else "?"
except Exception:
    sq_n = "?"
parse = sum(1 for v in rg["violations"] if v["rule"] == "parse-error")
stmts = rg["summary"]["statements"]
print(f"{sys.argv[3]}: {sys.argv[4]} files, {stmts} statements, {int(sys.argv[5]) // 1024} KiB")
print(f"  findings: realmguard {len(rg['violations'])} (parse-error {parse}, {100 * parse / max(stmts, 1):.2f}% of statements), squawk {sq_n}")
PY
    local rg_t sq_t
    rg_t=$(cd "$(dirname "$dir")" && best_of "$ABS_BIN" lint "${ALL[@]}" "$(basename "$dir")")
    sq_t=$(cd "$(dirname "$dir")" && best_of bash -c "squawk $(basename "$dir")/*.sql")
    python3 - "$n" "$rg_t" "$sq_t" "$(squawk --version)" <<'PY'
import sys
n, rg, sq, ver = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
print(f"  realmguard lint (every rule): {rg:.3f} s  {n / rg:9.0f} files/s")
print(f"  {ver:28}: {sq:.3f} s  {n / sq:9.0f} files/s")
print(f"  ratio (realmguard / squawk files per second): {sq / rg:.2f}x")
PY
}

bench "$WORK/migrations" "generated corpus"
# A real-world-shaped history: functions, triggers, views, DO blocks, enum types, data fixes.
python3 scripts/gen-realistic-migrations.py "$WORK/history" "$HISTORY" >/dev/null
bench "$WORK/history" "realistic history"

# check on the project's own migrations: start the embedded cluster first, then time the check.
"$BIN" embedded start >/dev/null 2>&1 || true
check_t=$(best_of "$ABS_BIN" check)
"$ABS_BIN" check >/dev/null 2>&1 && status=clean || status="exit $?"
printf 'realmguard check (migrations/, %s files, embedded cluster): %.3f s wall (%s)\n' \
    "$(ls migrations/*.sql | wc -l)" "$check_t" "$status"
