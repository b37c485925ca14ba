#!/usr/bin/env bash
# Backs up a PostgreSQL database through the service (POST /backups, engine postgres: pg_dump -Fc) and waits.
# shellcheck source=../lib/api.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/api.sh"

usage() {
  cat <<USAGE
Usage: $DR_SCRIPT --url postgresql://user@host:5432/db [--password-secret env:DRS_NAME|file:/path] [--location ID]
                  [--no-wait] [--json]

Backs up one PostgreSQL database (pg_dump run by the service) and waits until the backup ends.
  --url URL                connection URL without a password (required; the service refuses one with a password)
  --password-secret REF    where the service reads the password: env:DRS_NAME or file:/abs/path under the
                           service's DR_SECRET_DIRS (never the value)
  --location ID            storage location id (default: the service's default location)
  --no-wait                print the PENDING backup and return at once
  --json                   print the final backup record as one JSON line instead of text
Environment: DR_API_KEY (required, role BACKUP_ADMIN), DR_API_URL, DR_WAIT_SECONDS (default 3600).
Exit: 0 backup COMPLETED, 1 backup FAILED or request failed, 2 bad usage.
USAGE
}

url="" secret="" location="" wait=wait
while [ "$#" -gt 0 ]; do
  case "$1" in
    --url) dr_need_value "$1" "${2-}"; url="$2"; shift 2 ;;
    --password-secret) dr_need_value "$1" "${2-}"; secret="$2"; shift 2 ;;
    --location) dr_need_value "$1" "${2-}"; dr_check_uuid --location "$2"; location="$2"; shift 2 ;;
    --no-wait) wait=no-wait; shift ;;
    --json) DR_OUTPUT=json; shift ;;
    -h | --help) usage; exit 0 ;;
    *) dr_usage_error "unknown argument '$1'" ;;
  esac
done
[ -n "$url" ] || dr_usage_error "--url is required"
[[ "$url" == postgres://* || "$url" == postgresql://* ]] || dr_usage_error "--url must be a postgresql:// URL"
dr_init

body=$(jq -cn --arg url "$url" --arg secret "$secret" --arg location "$location" '
  {engine: "postgres", source: ({url: $url} + (if $secret != "" then {passwordSecret: $secret} else {} end))}
  + (if $location != "" then {storageLocationId: $location} else {} end)')
dr_run_backup "$body" "$wait"
