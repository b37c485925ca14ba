#!/usr/bin/env bash
# Proves a backup can be recovered: the service restores it into scratch (a throw-away database for postgres) and compares every file's SHA-256 or every table's row count and digest with what the backup recorded (verification mode restore).
# shellcheck source=../lib/api.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/api.sh"
MODE=restore
DESCRIPTION="Proves a backup can be recovered: the service restores it into scratch (a throw-away database for postgres) and compares every file's SHA-256 or every table's row count and digest with what the backup recorded (verification mode restore)."
# shellcheck source=../lib/verification.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/verification.sh"
