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
# Each tool is timed in wall time and in CPU (its process and its server backends; see below).
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

# CPU time beside wall time, to split a run's cost between the client and the server. With fsync
# off a run is CPU-bound, so its CPU moves with the machine's speed as much as its wall time does
# (measured: README, migrate). The client's is the tool's process (bash's `times`, children of
# this shell); the server's is what its backends used, read from the postmaster's reaped-children
# times in /proc once they have exited (so it includes connection start-up, as a user pays it).
pm_pid=$(head -1 "$(psql -X -qtA "$base" -c 'SHOW data_directory')/postmaster.pid")
hz=$(getconf CLK_TCK)
reaped_cpu() { awk -v hz="$hz" '{print ($16 + $17) / hz}' "/proc/$pm_pid/stat"; }
shell_children_cpu() { # user + system seconds of this shell's finished children, from `times`
  # (run by the caller itself: in a $(...) subshell it would count the subshell's children)
  tail -1 "$work/times" | awk '{t = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] } print t}'
}
backends_gone() { # wait (up to 5 s) until no client backend of this cluster is left, and a moment for the reaping
  local i
  for i in $(seq 500); do pgrep -P "$pm_pid" -f 'postgres: [^ ]+ [^ ]+ \[local\]' >/dev/null || break; sleep 0.01; done
  sleep 0.02
}

dir="$work/migrations"; mkdir -p "$dir"
CORPUS=${CORPUS:-tables}
if [ "$CORPUS" = realistic ]; then
  python3 scripts/gen-realistic-migrations.py "$dir" "$N"
else
  scripts/gen-table-migrations.sh "$dir" "$N"
fi
cat "$dir"/*.sql > "$work/all.sql"

want_tables=$(grep -l '^CREATE TABLE t' "$dir"/*.sql | wc -l)
declare -A times first cpu cpu_server
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
  backends_gone
  local s0 c0; s0=$(reaped_cpu); times > "$work/times"; c0=$(shell_children_cpu)
  local t0=$EPOCHREALTIME
  "$@" "$url" >"$work/$name.out" 2>&1 || { echo "$name failed:" >&2; tail -5 "$work/$name.out" >&2; exit 1; }
  local t1=$EPOCHREALTIME
  times[$name]+="$(awk "BEGIN {print $t1 - $t0}") "
  times > "$work/times"; local c1; c1=$(shell_children_cpu); backends_gone
  local s1; s1=$(reaped_cpu)
  cpu[$name]+="$(awk "BEGIN {print $c1 - $c0 + $s1 - $s0}") "
  cpu_server[$name]+="$(awk "BEGIN {print $s1 - $s0}") "
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
rg_notemp()  { rg_guard "$@"; }   # the same command; run() connects it as the role without TEMPORARY
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
REPORTED="rg_guard rg_noguard rg_notemp old_guard old_noguard sqlx_cli psql_floor"   # the order of every table below
printf '%-34s %10s  %14s   %s\n' "" "median" "" "first round"
for t in $REPORTED; do
  [ -n "${times[$t]:-}" ] || continue
  m=$(echo "${times[$t]}" | median)
  f=${first[$t]}
  printf '%-34s %8.3f s  %6.2fx sqlx-cli   %7.3f s %6.2fx\n' "${label[$t]}" "$m" "$(awk "BEGIN {print ($m_sqlx > 0) ? $m / $m_sqlx : 0}")" \
    "$f" "$(awk "BEGIN {print ($f_sqlx > 0) ? $f / $f_sqlx : 0}")"
done
echo "CPU seconds, the tool's process and its server backends (medians of the sum and of the server's part):"
c_sqlx=$(echo "${cpu[sqlx_cli]:-0}" | median)
for t in $REPORTED; do
  [ -n "${cpu[$t]:-}" ] || continue
  c=$(echo "${cpu[$t]}" | median)
  printf '%-34s %8.3f s  %6.2fx sqlx-cli   server %6.3f s\n' "${label[$t]}" "$c" "$(awk "BEGIN {print ($c_sqlx > 0) ? $c / $c_sqlx : 0}")" \
    "$(echo "${cpu_server[$t]}" | median)"
done
echo "every round, in order (s):"
for t in $REPORTED; do
  [ -n "${times[$t]:-}" ] && printf '  %-12s %s\n' "$t" "${times[$t]}"
done
echo "every round's CPU, client + server, in order (s):"
for t in $REPORTED; do
  [ -n "${cpu[$t]:-}" ] && printf '  %-12s %s\n' "$t" "${cpu[$t]}"
done
