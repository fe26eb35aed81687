#!/usr/bin/env bash
# Benchmark `realmguard verify` on a big catalog, against `pg_dump --schema-only` of the same
# database as the reference for "reading the whole catalog".
#
# A dedicated throwaway cluster (fsync off, Unix socket only) holds two databases generated the same
# way: TABLES realm-scoped tables (default 2000) and 20 tables. Each table has the realm column, the
# composite key, a foreign key to realms and one composite foreign key to an earlier table (about
# 2 foreign keys per table, so ~4,000 at 2,000 tables), an index for it, a unique key and a check.
#
# Figures printed:
#   - verify wall time (median of RUNS runs of the binary, connection included) and pg_dump's;
#   - the number of statements each verify run sent, counted by the server itself: the cluster
#     logs every statement (log_statement = all, only during the counting runs so logging does not
#     slow the timed runs) with the application_name in the prefix, and the script counts the
#     lines realmguard's connection produced. The binary's own count (REALMGUARD_VERIFY_STATS=1)
#     is printed next to it as a cross-check.
#
# Usage: scripts/bench-verify.sh [TABLES] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."

TABLES=${1:-2000}
RUNS=${2:-5}
BIN=${REALMGUARD_BIN:-target/release/realmguard}
if [[ ! -x $BIN ]]; then
  echo "bench: building $BIN" >&2
  cargo build --release --quiet
fi
BIN=$(realpath "$BIN")

BINDIR=$(pg_config --bindir 2>/dev/null || true)
if [[ -z $BINDIR || ! -x $BINDIR/initdb ]]; then
  BINDIR=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi
PORT=${BENCH_PORT:-5491}
WORK=$(mktemp -d /tmp/rg-bench-verify.XXXXXX)
chmod 755 "$WORK"
SOCK=$WORK/socket
DATA=$WORK/data
LOG=$WORK/server.log
mkdir -p "$SOCK"

as_pg() {
  if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}
if [[ $(id -u) == 0 ]]; then chown -R postgres "$WORK"; fi

cleanup() {
  as_pg "$BINDIR/pg_ctl" -D "$DATA" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

as_pg "$BINDIR/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
as_pg "$BINDIR/pg_ctl" -D "$DATA" -l "$LOG" -w -o "-k $SOCK -p $PORT -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c log_line_prefix='%a|'" start >/dev/null

PSQL=("$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U postgres)
url() { printf 'postgres://postgres@localhost:%s/%s?host=%s' "$PORT" "$1" "$(printf %s "$SOCK" | sed 's|/|%2F|g')"; }

# One realm-scoped table per line of SQL; table i references table i/2 (a tree, so cascades are
# realistic), every 50th table has a planted problem so the rules have something to report.
gen() {
  local n=$1
  echo "CREATE TABLE realms (id text PRIMARY KEY, name text NOT NULL);"
  awk -v n="$n" 'BEGIN {
    for (i = 0; i < n; i++) {
      t = sprintf("t%04d", i);
      printf "CREATE TABLE %s (id bigint NOT NULL, realm_id text NOT NULL REFERENCES realms (id) ON DELETE CASCADE, parent_id bigint, name text NOT NULL, qty int CHECK (qty >= 0), created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (id, realm_id), UNIQUE (realm_id, name));\n", t;
      if (i > 0) {
        p = sprintf("t%04d", int(i / 2));
        action = (i % 50 == 7) ? "RESTRICT" : "CASCADE";
        printf "ALTER TABLE %s ADD FOREIGN KEY (parent_id, realm_id) REFERENCES %s (id, realm_id) ON DELETE %s;\n", t, p, action;
        if (i % 50 != 13) printf "CREATE INDEX ON %s (parent_id, realm_id);\n", t;
      }
    }
  }'
}

stats() { # median and min of numbers on stdin, in ms
  sort -n | awk '{a[NR]=$1} END {printf "%.1f %.1f\n", a[int((NR+1)/2)], a[1]}'
}

now_ns() { date +%s%N; }

for n in 20 "$TABLES"; do
  db=bench_$n
  "${PSQL[@]}" -d postgres -c "CREATE DATABASE $db"
  t0=$(now_ns)
  gen "$n" | "${PSQL[@]}" -d "$db" -f - >/dev/null
  t1=$(now_ns)
  fks=$("${PSQL[@]}" -d "$db" -At -c "SELECT count(*) FROM pg_constraint WHERE contype = 'f'")
  "${PSQL[@]}" -d "$db" -c "VACUUM ANALYZE"
  echo "bench: $db: $n tables, $fks foreign keys, generated in $(( (t1 - t0) / 1000000 )) ms" >&2
done

count_queries() { # database -> "server-count self-count"
  local db=$1 before after self
  "${PSQL[@]}" -d postgres -c "ALTER SYSTEM SET log_statement = 'all'" -c "SELECT pg_reload_conf()" >/dev/null
  sleep 0.3
  before=$(stat -c %s "$LOG")
  self=$(DATABASE_URL=$(url "$db") REALMGUARD_VERIFY_STATS=1 "$BIN" verify --format json 2>&1 >/dev/null |
    sed -n 's/.*catalog in \([0-9]*\) queries.*/\1/p' || true)
  sleep 0.3
  after=$(stat -c %s "$LOG")
  "${PSQL[@]}" -d postgres -c "ALTER SYSTEM SET log_statement = 'none'" -c "SELECT pg_reload_conf()" >/dev/null
  local server
  server=$(tail -c +"$((before + 1))" "$LOG" | head -c "$((after - before))" |
    grep -cE '^realmguard\|LOG:  (statement|execute)' || true)
  echo "$server $self"
}

time_verify() { # database -> ms per run, one per line
  local db=$1 i t0 t1 rc
  for ((i = 0; i < RUNS; i++)); do
    t0=$(now_ns)
    set +e
    DATABASE_URL=$(url "$db") "$BIN" verify --format json >/dev/null
    rc=$?
    set -e
    t1=$(now_ns)
    if [[ $rc -gt 1 ]]; then echo "bench: verify failed (exit $rc)" >&2; exit 1; fi
    echo "scale=1; ($t1 - $t0) / 1000000" | bc
  done
}

time_dump() {
  local db=$1 i t0 t1
  for ((i = 0; i < RUNS; i++)); do
    t0=$(now_ns)
    "$BINDIR/pg_dump" -h "$SOCK" -p "$PORT" -U postgres --schema-only "$db" >/dev/null
    t1=$(now_ns)
    echo "scale=1; ($t1 - $t0) / 1000000" | bc
  done
}

read -r q_small_server q_small_self < <(count_queries bench_20)
read -r q_big_server q_big_self < <(count_queries "bench_$TABLES")
# One untimed run each to warm the caches, then the timed runs.
DATABASE_URL=$(url "bench_$TABLES") "$BIN" verify --format json >/dev/null || true
"$BINDIR/pg_dump" -h "$SOCK" -p "$PORT" -U postgres --schema-only "bench_$TABLES" >/dev/null
read -r v_med v_min < <(time_verify "bench_$TABLES" | stats)
read -r d_med d_min < <(time_dump "bench_$TABLES" | stats)
read -r v20_med v20_min < <(time_verify bench_20 | stats)
violations=$( (DATABASE_URL=$(url "bench_$TABLES") "$BIN" verify --format json || true) | grep -c '"rule"' || true)
big_fks=$("${PSQL[@]}" -d "bench_$TABLES" -At -c "SELECT count(*) FROM pg_constraint WHERE contype = 'f'")

echo "verify benchmark ($("$BIN" --version), PostgreSQL $("${PSQL[@]}" -d postgres -At -c 'SHOW server_version'), $(nproc) cores, $RUNS runs, median/min)"
printf '  catalog: %s tables, %s foreign keys; verify reported %s violations\n' "$TABLES" "$big_fks" "$violations"
printf '  verify, %5s tables:       %8s ms  (min %s)\n' "$TABLES" "$v_med" "$v_min"
printf '  pg_dump --schema-only:     %8s ms  (min %s)\n' "$d_med" "$d_min"
printf '  verify,    20 tables:      %8s ms  (min %s)\n' "$v20_med" "$v20_min"
printf '  ratio verify/pg_dump:      %8s     (target <= 0.25)\n' "$(echo "scale=3; $v_med / $d_med" | bc)"
printf '  queries at %s tables:    %s (server log), %s (self-reported catalog reads)\n' "$TABLES" "$q_big_server" "$q_big_self"
printf '  queries at 20 tables:      %s (server log), %s (self-reported catalog reads)\n' "$q_small_server" "$q_small_self"
if [[ $q_small_server == "$q_big_server" ]]; then
  echo "  query count: the same at 20 and at $TABLES tables"
else
  echo "  query count: DIFFERS between 20 and $TABLES tables"
fi
