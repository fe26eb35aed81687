#!/usr/bin/env bash
# Lint throughput: realmguard vs squawk on the same generated corpus, in the same run.
#
#   scripts/bench-lint.sh [FILES] [RUNS]     (defaults: 2000 files, best of 3 runs)
#
# Generates FILES migration files with a realistic mix of statements (scripts/gen-migrations.py),
# lints the whole directory with each tool RUNS times, and prints the best files/second of each and
# the ratio. Also reports `realmguard check` wall time on the project's own migrations (embedded
# cluster, started beforehand so its start-up is not counted).
set -euo pipefail
cd "$(dirname "$0")/.."

FILES=${1:-2000}
RUNS=${2:-3}
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
n=$(ls "$WORK/migrations" | wc -l)
bytes=$(cat "$WORK"/migrations/*.sql | wc -c)

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

(cd "$WORK" && "$OLDPWD/$BIN" lint --format json migrations >"$WORK/rg.json" 2>/dev/null) || true
(cd "$WORK" && squawk --reporter json migrations/*.sql >"$WORK/sq.json" 2>/dev/null) || true
rg_findings=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['violations']))" "$WORK/rg.json")
stmts=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['summary']['statements'])" "$WORK/rg.json")
echo "corpus: $n files, $stmts statements, $((bytes / 1024)) KiB"

sq_findings=$(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(len(d) if isinstance(d, list) else '?')" "$WORK/sq.json" 2>/dev/null || echo "?")
echo "findings: realmguard $rg_findings, squawk $sq_findings"

ABS_BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
rg_t=$(cd "$WORK" && best_of "$ABS_BIN" lint migrations)
sq_t=$(cd "$WORK" && best_of bash -c 'squawk migrations/*.sql')

python3 - "$n" "$rg_t" "$sq_t" "$(squawk --version)" <<'PY'
import sys
n, rg, sq, ver = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
print(f"realmguard lint: {rg:.3f} s  {n / rg:9.0f} files/s")
print(f"{ver:15}: {sq:.3f} s  {n / sq:9.0f} files/s")
print(f"ratio (realmguard / squawk files per second): {sq / rg:.2f}x")
PY

# check on the project's own migrations: start the embedded cluster first, then time the check.
"$BIN" embedded start >/dev/null 2>&1 || true
check_t=$(best_of "$ABS_BIN" check)
"$ABS_BIN" check >/dev/null 2>&1 && status=clean || status="exit $?"
printf 'realmguard check (migrations/, %s files, embedded cluster): %.3f s wall (%s)\n' \
    "$(ls migrations/*.sql | wc -l)" "$check_t" "$status"
