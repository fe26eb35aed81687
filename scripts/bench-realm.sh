#!/usr/bin/env bash
# Benchmark `realmguard realm copy` between two clusters this script starts (two embedded
# clusters, each under its own temp home), against the floor a DBA would script by hand:
#   psql -c "\copy (SELECT … WHERE realm_id = …) TO STDOUT" | psql -c "\copy … FROM STDIN"
# per table in the same (parents-first) order, into a second fresh target database.
#
# The source holds realm w1 with N memberships (default 1,000,000; N/10 users, N/50 groups,
# N/10 membership statements) and realm w100k with a tenth of that. Reported: wall time, rows/s
# and MB/s (bytes as COPY binary streams them) of both ways, realmguard's peak RSS
# (/usr/bin/time -v) for the 100k and the 1M realm (it must be flat), and the ratio.
# Targets: realm copy at least as fast as the psql pipeline (which does no verification); peak
# memory flat.
#
#   scripts/bench-realm.sh            # N=1000000 ROUNDS=1
#   N=200000 ROUNDS=3 scripts/bench-realm.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000000}
ROUNDS=${ROUNDS:-1}
BIN=${REALMGUARD_BIN:-target/release/realmguard}
[ -x "$BIN" ] || cargo build --release --quiet

work=$(mktemp -d /tmp/rg-bench-realm.XXXXXX)
cleanup() {
    for h in a b; do REALMGUARD_HOME="$work/$h" "$BIN" embedded stop >/dev/null 2>&1 || true; done
    rm -rf "$work"
}
trap cleanup EXIT
start() { REALMGUARD_HOME="$work/$1" "$BIN" embedded start >/dev/null; REALMGUARD_HOME="$work/$1" "$BIN" embedded url; }
A=$(start a)
B=$(start b)
url_for() { echo "${1/\/postgres\?/\/$2?}"; }
psql() { command psql -X -q -v ON_ERROR_STOP=1 "$@"; }

SRC=$(url_for "$A" src)
psql "$A" -c "CREATE DATABASE src"
DATABASE_URL=$SRC "$BIN" migrate >/dev/null

seed() { # realm memberships
    local r=$1 m=$2
    psql "$SRC" <<SQL
INSERT INTO realms (id, name) VALUES ('$r', 'Realm $r');
INSERT INTO users (realm_id, email, display_name)
  SELECT '$r', 'user' || i || '@$r.example', 'User number ' || i FROM generate_series(1, $m / 10) i;
INSERT INTO groups (realm_id, name) SELECT '$r', 'group ' || i FROM generate_series(1, $m / 50) i;
INSERT INTO policy_statement_types (realm_id, code) VALUES ('$r', 'BOARD_MEMBER'), ('$r', 'TREASURER');
-- Each user in 10 distinct groups.
INSERT INTO memberships (realm_id, user_id, group_id)
  SELECT '$r', u.id, g.id
  FROM (SELECT id, row_number() OVER (ORDER BY id) - 1 AS rn FROM users WHERE realm_id = '$r') u
  CROSS JOIN generate_series(0, 9) AS k
  JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS rn FROM groups WHERE realm_id = '$r') g
    ON g.rn = (u.rn * 10 + k) % ($m / 50);
INSERT INTO membership_statements (realm_id, membership_id, statement_type_id)
  SELECT '$r', m.id, t.id FROM memberships m JOIN policy_statement_types t USING (realm_id)
  WHERE m.realm_id = '$r' AND t.code = 'BOARD_MEMBER' AND m.id % 10 = 0;
SQL
}
seed w1 "$N"
seed w100k $((N / 10))
psql "$SRC" -c "VACUUM ANALYZE" -c "CHECKPOINT"
rows_of() { psql -tA "$SRC" -c "SELECT (SELECT count(*) FROM realms WHERE id = '$1') + (SELECT count(*) FROM users WHERE realm_id = '$1')
  + (SELECT count(*) FROM groups WHERE realm_id = '$1') + (SELECT count(*) FROM memberships WHERE realm_id = '$1')
  + (SELECT count(*) FROM policy_statement_types WHERE realm_id = '$1') + (SELECT count(*) FROM membership_statements WHERE realm_id = '$1')"; }
ROWS=$(rows_of w1)

fresh_target() { # name -> url of a new migrated database on B
    psql "$B" -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1"
    local u; u=$(url_for "$B" "$1")
    DATABASE_URL=$u "$BIN" migrate >/dev/null
    echo "$u"
}

# The hand-written floor: the same tables in the same order, one psql pair per table.
TABLES="realms:id groups:realm_id policy_statement_types:realm_id users:realm_id memberships:realm_id membership_statements:realm_id"
psql_pipeline() { # realm target-url
    for tc in $TABLES; do
        t=${tc%%:*}; c=${tc##*:}
        psql "$SRC" -c "\\copy (SELECT * FROM $t WHERE $c = '$1') TO STDOUT" | psql "$2" -c "\\copy $t FROM STDIN"
    done
}

declare -A times
rss_1m=0
for round in $(seq 1 "$ROUNDS"); do
    for way in rg psql; do
        [ $((round % 2)) -eq 1 ] || way=$([ "$way" = rg ] && echo psql || echo rg)
        dst=$(fresh_target "t_${way}_$round")
        psql "$dst" -c "CHECKPOINT"
        t0=$EPOCHREALTIME
        if [ "$way" = rg ]; then
            DATABASE_URL=$SRC /usr/bin/time -v -o "$work/time.$round" \
                "$BIN" realm copy --realm w1 --to "$dst" --format json >"$work/copy.json" 2>"$work/copy.err" \
                || { cat "$work/copy.err" >&2; exit 1; }
        else
            psql_pipeline w1 "$dst"
        fi
        t1=$EPOCHREALTIME
        times[$way]+="$(awk "BEGIN {print $t1 - $t0}") "
        got=$(psql -tA "$dst" -c "SELECT count(*) FROM memberships WHERE realm_id = 'w1'")
        [ "$got" -eq "$N" ] || { echo "$way copied $got of $N memberships" >&2; exit 1; }
        if [ "$way" = rg ]; then
            r=$(awk '/Maximum resident/ {print $NF}' "$work/time.$round")
            [ "$r" -gt "$rss_1m" ] && rss_1m=$r
        fi
    done
done
BYTES=$(jq '[.tables[].bytes] | add' "$work/copy.json")

# Peak memory of the 100k realm's copy, for the flatness check.
dst=$(fresh_target t_small)
DATABASE_URL=$SRC /usr/bin/time -v -o "$work/time.small" \
    "$BIN" realm copy --realm w100k --to "$dst" --format json >/dev/null 2>"$work/small.err" \
    || { cat "$work/small.err" >&2; exit 1; }
rss_100k=$(awk '/Maximum resident/ {print $NF}' "$work/time.small")

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
m_rg=$(echo "${times[rg]}" | median)
m_psql=$(echo "${times[psql]}" | median)
echo "realm copy benchmark: realm w1, $N memberships, $ROWS rows, $(awk "BEGIN {printf \"%.1f\", $BYTES / 1e6}") MB (binary COPY), median of $ROUNDS, PostgreSQL $(psql -tA "$A" -c 'SHOW server_version')"
printf '  %-44s %7.2f s  %9.0f rows/s  %6.1f MB/s\n' "realmguard realm copy (verified, one commit)" "$m_rg" \
    "$(awk "BEGIN {print $ROWS / $m_rg}")" "$(awk "BEGIN {print $BYTES / 1e6 / $m_rg}")"
printf '  %-44s %7.2f s  %9.0f rows/s  %6.1f MB/s\n' "psql \\copy | psql \\copy per table (floor)" "$m_psql" \
    "$(awk "BEGIN {print $ROWS / $m_psql}")" "$(awk "BEGIN {print $BYTES / 1e6 / $m_psql}")"
echo "  ratio realm copy / pipeline throughput: $(awk "BEGIN {printf \"%.2f\", $m_psql / $m_rg}")x"
echo "  realmguard peak RSS: $((rss_100k / 1024)) MB at $((N / 10)) memberships, $((rss_1m / 1024)) MB at $N"
