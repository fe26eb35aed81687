#!/usr/bin/env bash
# Benchmark: apply N small migrations to a fresh database with realmguard (verify guard on and
# off), sqlx-cli (the reference Rust runner) and psql running every file in one transaction (the floor). All three run
# against the same throwaway embedded cluster, each on its own fresh database, ROUNDS times in
# alternating order; the median of each is printed with the ratios.
#
#   scripts/bench-migrate.sh            # N=500 ROUNDS=3
#   N=100 ROUNDS=1 scripts/bench-migrate.sh
#   FSYNC=off scripts/bench-migrate.sh  # a server whose commits are cheap: the client's own work shows
#   CORPUS=realistic N=200 scripts/bench-migrate.sh   # functions, triggers, views, DO blocks, data
#   OLD_BIN=/tmp/realmguard-before scripts/bench-migrate.sh   # also time another realmguard build
#   NOTEMP=1 scripts/bench-migrate.sh   # also the guard of a role without TEMPORARY (plain read)
# Every run gets a fresh database; each tool's first run (its plans and catalog caches cold in a new
# backend, only the tools before it have warmed the server) is reported on its own as well.
# Needs sqlx-cli: cargo install sqlx-cli --no-default-features --features postgres
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-500}
ROUNDS=${ROUNDS:-3}
BIN=${REALMGUARD_BIN:-target/release/realmguard}
[ -x "$BIN" ] || cargo build --release --quiet
SQLX=${SQLX:-$(command -v sqlx || echo "$HOME/.cargo/bin/sqlx")}
[ -x "$SQLX" ] || { echo "sqlx-cli not found; cargo install sqlx-cli --no-default-features --features postgres" >&2; exit 2; }

# With fsync off the cluster lives in memory (/dev/shm) unless BENCH_DIR says otherwise: on an
# ext4 disk, creating files gets slower as earlier rounds' files are deleted (perf: the kernel's
# inode allocation, recently_deleted / find_inode_bit; the same tool took 1.5 s in the first round,
# 3.4-4.9 s after), which would swamp what is compared. With fsync on the disk is the point, so
# that run stays on it and its later rounds carry this effect.
FSYNC=${FSYNC:-on}
default_dir=/tmp
[ "$FSYNC" != off ] || [ ! -d /dev/shm ] || default_dir=/dev/shm
work=$(mktemp -d "${BENCH_DIR:-$default_dir}/rg-bench-migrate.XXXXXX")
chmod 755 "$work"   # the postgres user must reach the cluster inside it (else it falls back to /tmp)
export REALMGUARD_HOME="$work/home"
cleanup() { "$BIN" embedded stop >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
"$BIN" embedded start >/dev/null
base=$("$BIN" embedded url)            # …/postgres?host=<socket dir>
if [ "$FSYNC" = off ]; then
  psql -X -q "$base" -c "ALTER SYSTEM SET fsync = off" -c "ALTER SYSTEM SET synchronous_commit = off" -c "SELECT pg_reload_conf()" >/dev/null
fi
url_for() { echo "${base/\/postgres\?/\/$1?}"; }

dir="$work/migrations"; mkdir -p "$dir"
CORPUS=${CORPUS:-tables}
if [ "$CORPUS" = realistic ]; then
  python3 scripts/gen-realistic-migrations.py "$dir" "$N"
else
  scripts/gen-table-migrations.sh "$dir" "$N"
fi
cat "$dir"/*.sql > "$work/all.sql"

want_tables=$(grep -l '^CREATE TABLE t' "$dir"/*.sql | wc -l)
declare -A times first
run() { # name command...
  local name=$1; shift
  local db="b_${name//-/_}_$round"
  psql -X -q "$base" -c "CREATE DATABASE $db" >/dev/null
  # Each tool starts after a checkpoint, so none pays for the WAL and dirty pages the tools
  # before it left (a checkpoint falling inside one tool's run added a third to it).
  psql -X -q "$base" -c "CHECKPOINT" >/dev/null
  local url; url=$(url_for "$db")
  if [ "$name" = rg_notemp ]; then
    # The guard's fallback: a role that may not create the temporary function (the test
    # a_role_without_the_temporary_privilege_is_still_guarded sets it up the same way).
    psql -X -q "$url" -c "REVOKE TEMPORARY ON DATABASE $db FROM PUBLIC" \
      -c "GRANT CREATE ON DATABASE $db TO rg_bench_notemp" \
      -c "GRANT CREATE ON SCHEMA public TO rg_bench_notemp" >/dev/null
    url=${url/postgres@/rg_bench_notemp@}
  fi
  local t0=$EPOCHREALTIME
  "$@" "$url" >"$work/$name.out" 2>&1 || { echo "$name failed:" >&2; tail -5 "$work/$name.out" >&2; exit 1; }
  local t1=$EPOCHREALTIME
  times[$name]+="$(awk "BEGIN {print $t1 - $t0}") "
  # Every tool must have applied everything.
  local n; n=$(psql -X -qtA "$url" -c "SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relname ~ '^t[0-9]+$'")
  [ "$n" -eq "$want_tables" ] || { echo "$name applied $n of $want_tables tables" >&2; exit 1; }
  # Dropped at once, so the cluster does not grow by N tables per tool and round.
  psql -X -q "$base" -c "DROP DATABASE $db" >/dev/null
  [ -n "${first[$name]:-}" ] || first[$name]=$(awk "BEGIN {print $t1 - $t0}")
}
rg_guard()   { DATABASE_URL=$1 "$BIN" migrate --dir "$dir"; }
rg_noguard() { DATABASE_URL=$1 "$BIN" migrate --dir "$dir" --no-verify; }
sqlx_cli()   { "$SQLX" migrate run --source "$dir" --database-url "$1"; }
psql_floor() { psql -X -q -1 -v ON_ERROR_STOP=1 "$1" -f "$work/all.sql"; }
rg_notemp()  { DATABASE_URL=$1 "$BIN" migrate --dir "$dir"; }
old_guard()   { DATABASE_URL=$1 "$OLD_BIN" migrate --dir "$dir"; }
old_noguard() { DATABASE_URL=$1 "$OLD_BIN" migrate --dir "$dir" --no-verify; }

DEFAULT_TOOLS="sqlx_cli rg_guard rg_noguard psql_floor"
[ -z "${OLD_BIN:-}" ] || DEFAULT_TOOLS="$DEFAULT_TOOLS old_guard old_noguard"
if [ -n "${NOTEMP:-}" ]; then
  DEFAULT_TOOLS="$DEFAULT_TOOLS rg_notemp"
  psql -X -q "$base" -c "CREATE ROLE rg_bench_notemp LOGIN" >/dev/null
fi
TOOLS=${TOOLS:-$DEFAULT_TOOLS}
for round in $(seq 1 "$ROUNDS"); do
  order=$TOOLS
  [ $((round % 2)) -eq 1 ] || order=$(echo "$TOOLS" | tr ' ' '\n' | tac | tr '\n' ' ')
  for t in $order; do run "$t" "$t"; done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "migrate benchmark: $N migrations ($CORPUS corpus), fsync $FSYNC, median of $ROUNDS rounds, same server ($(psql -X -qtA "$base" -c 'SHOW server_version'))"
m_sqlx=$(echo "${times[sqlx_cli]:-0}" | median)
f_sqlx=${first[sqlx_cli]:-0}
declare -A label=([rg_guard]="realmguard migrate (verify guard)" [rg_noguard]="realmguard migrate --no-verify" [rg_notemp]="realmguard, role without TEMPORARY"
                  [sqlx_cli]="sqlx migrate run" [psql_floor]="psql -1, one transaction (floor)"
                  [old_guard]="OLD_BIN migrate (verify guard)" [old_noguard]="OLD_BIN migrate --no-verify")
printf '%-34s %10s  %14s   %s\n' "" "median" "" "first round"
for t in rg_guard rg_noguard rg_notemp old_guard old_noguard sqlx_cli psql_floor; do
  [ -n "${times[$t]:-}" ] || continue
  m=$(echo "${times[$t]}" | median)
  f=${first[$t]}
  printf '%-34s %8.3f s  %6.2fx sqlx-cli   %7.3f s %6.2fx\n' "${label[$t]}" "$m" "$(awk "BEGIN {print ($m_sqlx > 0) ? $m / $m_sqlx : 0}")" \
    "$f" "$(awk "BEGIN {print ($f_sqlx > 0) ? $f / $f_sqlx : 0}")"
done
echo "every round, in order (s):"
for t in rg_guard rg_noguard rg_notemp old_guard old_noguard sqlx_cli psql_floor; do
  [ -n "${times[$t]:-}" ] && printf '  %-12s %s\n' "$t" "${times[$t]}"
done
