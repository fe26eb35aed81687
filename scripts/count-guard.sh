#!/usr/bin/env bash
# The guard's server cost per migration in instructions (valgrind's callgrind), not seconds:
# repeatable for the same build and server whatever else the machine is doing, so a change to
# the guard's SQL can be judged by a few percent (issue 21; docs/architecture.md, "The guard").
#
#   scripts/count-guard.sh            # N=100: calls 101-200 of a run, against calls 1-100
#
# A throwaway cluster gets a database with the realms table and the session function the guard
# runs (taken from the server log of a real `realmguard migrate`), made permanent here as
# public.realmguard_guard(). Then single-user backends run under callgrind, each on a fresh copy
# of that database, as a migration run would: N and 2N migrations, each committed, each followed
# by the guard or by a function that does nothing. The migrations are the benchmark's table
# corpus (a CREATE TABLE with foreign keys to the realms table and the previous table, and an
# index), or CREATE FUNCTIONs that change no table. The plans are made at the first call, on a
# small catalog, and kept while it grows, as in a real run (a plan that gets slower as the
# catalog grows shows here). 2N minus N calls is the cost of the later N; guard minus nothing
# is the guard's, split into its lock read (the function stopped after it) and its scoped read.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-100}
BIN=${REALMGUARD_BIN:-target/release/realmguard}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
[ -x "$BIN" ] || cargo build --release --quiet
command -v valgrind >/dev/null || { echo "valgrind not found (apt-get install valgrind)" >&2; exit 2; }

work=$(mktemp -d "${BENCH_DIR:-/dev/shm}/rg-count-guard.XXXXXX")
chmod 755 "$work"
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -c "$1"; else bash -c "$1"; fi; }
[ "$(id -u)" != 0 ] || chown postgres "$work"
cleanup() { as_pg "$PGBIN/pg_ctl -D $work/data stop -m immediate" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

as_pg "$PGBIN/initdb -D $work/data -A trust" >/dev/null
as_pg "$PGBIN/pg_ctl -D $work/data -o '-p 5497 -k $work -c fsync=off -c log_statement=all' -l $work/log start" >/dev/null
url="postgres://postgres@localhost:5497/g?host=$work"
psql -X -q "postgres://postgres@localhost:5497/postgres?host=$work" -c "CREATE DATABASE g"
scripts/gen-table-migrations.sh "$work/m" $((2 * N + 2))
mkdir "$work/first"; cp "$work/m/00001_realms.sql" "$work/first/"
# A table migration too, so that the log holds the function (it is created for a migration).
cp "$work/m/00002_table_2.sql" "$work/first/"
DATABASE_URL="$url" "$BIN" migrate --dir "$work/first" >/dev/null

# The guard's function as this build creates it, from the log of that run.
python3 - "$work/log" "$work/guard.sql" <<'PY'
import sys
text = open(sys.argv[1]).read()
start = text.index("CREATE OR REPLACE FUNCTION pg_temp.realmguard_guard")
end = text.index("$realmguard$;", start) + len("$realmguard$;")
body = "\n".join(l[1:] if l.startswith("\t") else l for l in text[start:end].split("\n"))
open(sys.argv[2], "w").write(body.replace("pg_temp.realmguard_guard", "public.realmguard_guard") + "\n")
# The same function stopped after its lock read whatever it found: the guard minus this is the
# scoped read's share.
stop = "IF rg_oids IS NULL THEN RETURN NEXT; RETURN; END IF;"
if stop not in body:
    sys.exit("count-guard: the guard function has no early return after its lock read: " + stop)
lock = body.replace(stop, "RETURN NEXT; RETURN;").replace("pg_temp.realmguard_guard", "public.realmguard_lock_read")
open(sys.argv[2], "a").write(lock + "\n")
PY
psql -X -q "$url" -f "$work/guard.sql" \
  -c "CREATE FUNCTION public.nothing() RETURNS TABLE (x int) LANGUAGE plpgsql AS \$\$BEGIN RETURN NEXT; END\$\$"
as_pg "$PGBIN/pg_ctl -D $work/data stop" >/dev/null

# count KIND FUNCTION CALLS -> "total ExecutorStart pg_lock_status" instructions of a backend
# that runs CALLS migrations of KIND (table, no_table), each followed by FUNCTION.
count() {
  local script="$work/script.sql" out="$work/cg.out" i f
  : > "$script"
  for i in $(seq 3 $(($3 + 2))); do
    printf 'BEGIN;\n\n' >> "$script"
    if [ "$1" = table ]; then
      f=$(printf '%s/%05d_table_%d.sql' "$work/m" "$i" "$i")
      # -j: a statement ends at a semicolon followed by an empty line.
      sed 's/;$/;\n/' "$f" >> "$script" || exit 1
    else
      printf "CREATE FUNCTION f%d() RETURNS int LANGUAGE sql AS 'SELECT 1';\n\n" "$i" >> "$script"
    fi
    printf 'SELECT count(*) FROM public.%s();\n\nCOMMIT;\n\n' "$2" >> "$script"
  done
  rm -rf "$work/run"; cp -a "$work/data" "$work/run"; rm -f "$out"
  chmod 644 "$script"
  as_pg "valgrind --tool=callgrind --callgrind-out-file=$out $PGBIN/postgres --single -j -D $work/run -c fsync=off g < $script > $work/single.out 2> $work/vg.log"
  if grep -q "ERROR" "$work/single.out"; then grep -m1 ERROR "$work/single.out" >&2; exit 1; fi
  callgrind_annotate --inclusive=yes --threshold=100 "$out" 2>/dev/null | python3 -c '
import re, sys
want = ["PROGRAM TOTALS", "standard_ExecutorStart", "pg_lock_status"]
got = dict.fromkeys(want, 0)
for line in sys.stdin:
    m = re.match(r"\s*([\d,]+) .*?(PROGRAM TOTALS|:(\w+) )", line)
    if m:
        name = m.group(3) or m.group(2)
        if name in got and got[name] == 0:
            got[name] = int(m.group(1).replace(",", ""))
print(" ".join(str(got[w]) for w in want))'
}
# steady KIND FUNCTION -> per-call figures of the later N calls
steady() {
  local a b
  a=$(count "$1" "$2" "$N"); b=$(count "$1" "$2" $((2 * N)))
  python3 -c 'import sys; a=list(map(int,sys.argv[1].split())); b=list(map(int,sys.argv[2].split())); print(" ".join(str((y-x)/int(sys.argv[3])) for x,y in zip(a,b)))' "$a" "$b" "$N"
}
echo "guard function, instructions per call (callgrind): calls $((N + 1))-$((2 * N)) of a run, $("$PGBIN/postgres" --version)"
echo "(lock read: the function stopped after it; scoped read: the rest; both include their plans' start-up)"
printf '%-42s %10s %16s %12s %11s %13s\n' "migration" "total" "plan start-ups" "pg_locks" "lock read" "scoped read"
for kind in table no_table; do
  g=$(steady "$kind" realmguard_guard); z=$(steady "$kind" nothing)
  # A migration that changes no table stops after the lock read anyway.
  if [ "$kind" = table ]; then l=$(steady "$kind" realmguard_lock_read); else l=$g; fi
  python3 -c '
import sys
g, z, l = (list(map(float, a.split())) for a in sys.argv[2:5])
d = [x - y for x, y in zip(g, z)]
lock = l[0] - z[0]
print("%-42s %9.2fM %15.2fM %11.2fM %10.2fM %12.2fM" % (sys.argv[1], d[0]/1e6, d[1]/1e6, d[2]/1e6, lock/1e6, (d[0] - lock)/1e6))' \
    "$( [ "$kind" = table ] && echo "CREATE TABLE (the benchmark's corpus)" || echo "CREATE FUNCTION (no table)")" "$g" "$z" "$l"
done
