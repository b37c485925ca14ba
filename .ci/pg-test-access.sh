#!/usr/bin/env bash
# Makes a Debian PostgreSQL cluster accept what the tests need: the superuser `postgres` over TCP from the loopback
# addresses without a password (the tests' TEST_PG_URL, postgresql://postgres@127.0.0.1:5432/postgres).
# usage: .ci/pg-test-access.sh VERSION CLUSTER
# Only when that connection is refused: a cluster that already accepts it (a developer's, trust or .pgpass) is not
# touched. Otherwise two lines go first in pg_hba.conf (marked "dr-ci", added once; the first matching line wins)
# and the cluster reloads its configuration. Trust on loopback is for throw-away CI machines only.
set -euo pipefail
version="$1" cluster="$2"
port=$(pg_conftool -s "$version" "$cluster" postgresql.conf show port 2>/dev/null || echo 5432)
accepts() { psql -X -w -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atc 'SELECT 1' >/dev/null 2>&1; }
accepts && exit 0
hba="/etc/postgresql/$version/$cluster/pg_hba.conf"
if ! grep -q '^# dr-ci:' "$hba"; then
  echo "ci: $hba: trust for postgres from 127.0.0.1 and ::1 (the tests connect without a password)"
  tmp=$(mktemp)
  { echo '# dr-ci: the tests connect as postgres from loopback without a password (added by .ci/pg-test-access.sh)'
    echo 'host all postgres 127.0.0.1/32 trust'
    echo 'host all postgres ::1/128 trust'
    cat "$hba"; } > "$tmp"
  cat "$tmp" > "$hba" # keeps the file's owner and mode
  rm -f "$tmp"
fi
pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" reload
for _ in $(seq 1 30); do accepts && exit 0; sleep 1; done
echo "ci: PostgreSQL $version/$cluster on port $port still refuses postgres@127.0.0.1 without a password" >&2
exit 1
