#!/usr/bin/env bash
# Backs up a directory tree through the service (POST /backups, engine filesystem) and waits for the outcome.
# shellcheck source=../lib/api.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/api.sh"

usage() {
  cat <<USAGE
Usage: $DR_SCRIPT --path /abs/dir [--include GLOB]... [--exclude GLOB]... [--location ID] [--no-wait] [--json]

Backs up the directory tree at --path (as seen by the service's host) and waits until the backup ends.
  --path DIR        absolute path of the directory to back up (required)
  --include GLOB    only files matching (repeatable, relative to --path, e.g. '**/*.yml')
  --exclude GLOB    leave out files matching (repeatable)
  --location ID     storage location id (default: the service's default location)
  --no-wait         print the PENDING backup and return at once
  --json            print the final backup record as one JSON line instead of text
Environment: DR_API_KEY (required, role BACKUP_ADMIN), DR_API_URL, DR_WAIT_SECONDS (default 3600).
Exit: 0 backup COMPLETED, 1 backup FAILED or request failed, 2 bad usage.
USAGE
}

path="" location="" wait=wait includes=() excludes=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --path) dr_need_value "$1" "${2-}"; path="$2"; shift 2 ;;
    --include) dr_need_value "$1" "${2-}"; includes+=("$2"); shift 2 ;;
    --exclude) dr_need_value "$1" "${2-}"; excludes+=("$2"); shift 2 ;;
    --location) dr_need_value "$1" "${2-}"; dr_check_uuid --location "$2"; location="$2"; shift 2 ;;
    --no-wait) wait=no-wait; shift ;;
    --json) DR_OUTPUT=json; shift ;;
    -h | --help) usage; exit 0 ;;
    *) dr_usage_error "unknown argument '$1'" ;;
  esac
done
[ -n "$path" ] || dr_usage_error "--path is required"
[[ "$path" == /* ]] || dr_usage_error "--path must be an absolute path, got '$path'"
dr_init

body=$(jq -cn --arg path "$path" --arg location "$location" \
  --argjson inc "$(dr_json_array "${includes[@]}")" --argjson exc "$(dr_json_array "${excludes[@]}")" '
  {engine: "filesystem", source: ({path: $path}
    + (if ($inc | length) > 0 then {include: $inc} else {} end)
    + (if ($exc | length) > 0 then {exclude: $exc} else {} end))}
  + (if $location != "" then {storageLocationId: $location} else {} end)')
dr_run_backup "$body" "$wait"
