#!/usr/bin/env bash
# Snapshots configuration files through the service (POST /backups, engine configuration) and waits.
# shellcheck source=../lib/api.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/api.sh"

usage() {
  cat <<USAGE
Usage: $DR_SCRIPT --path GLOB [--path GLOB]... [--location ID] [--no-wait] [--json]

Takes a configuration snapshot of the files matching the globs (per-file SHA-256 index; compare two snapshots
with GET /backups/{id}/diff/{otherId}) and waits until the backup ends.
  --path GLOB      absolute file path or glob on the service's host, e.g. '/etc/app/*.yml' (repeatable, required)
  --location ID    storage location id (default: the service's default location)
  --no-wait        print the PENDING backup and return at once
  --json           print the final backup record as one JSON line instead of text
Environment: DR_API_KEY (required, role BACKUP_ADMIN), DR_API_URL, DR_WAIT_SECONDS (default 3600).
Exit: 0 backup COMPLETED, 1 backup FAILED or request failed, 2 bad usage.
USAGE
}

paths=() location="" wait=wait
while [ "$#" -gt 0 ]; do
  case "$1" in
    --path) dr_need_value "$1" "${2-}"; [[ "$2" == /* ]] || dr_usage_error "--path must be absolute, got '$2'"; paths+=("$2"); shift 2 ;;
    --location) dr_need_value "$1" "${2-}"; dr_check_uuid --location "$2"; location="$2"; shift 2 ;;
    --no-wait) wait=no-wait; shift ;;
    --json) DR_OUTPUT=json; shift ;;
    -h | --help) usage; exit 0 ;;
    *) dr_usage_error "unknown argument '$1'" ;;
  esac
done
[ "${#paths[@]}" -gt 0 ] || dr_usage_error "at least one --path is required"
dr_init

body=$(jq -cn --argjson paths "$(dr_json_array "${paths[@]}")" --arg location "$location" '
  {engine: "configuration", source: {paths: $paths}}
  + (if $location != "" then {storageLocationId: $location} else {} end)')
dr_run_backup "$body" "$wait"
