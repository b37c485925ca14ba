#!/usr/bin/env bash
# Restores a PostgreSQL backup into a database through the service (POST /recovery: pg_restore) and waits.
# shellcheck source=../lib/api.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/api.sh"

usage() {
  cat <<USAGE
Usage: $DR_SCRIPT --backup ID|latest --url postgresql://user@host:5432/db [--create] [--overwrite] [--no-owner]
                  [--password-secret env:DRS_NAME|file:/path] [--location ID] [--trust-unsigned-manifest]
                  [--no-wait] [--json]

Restores a postgres backup into the database at --url and waits until the recovery ends; its duration is the
measured recovery time.
  --backup ID|latest          the backup to restore, or the newest COMPLETED postgres backup (required)
  --url URL                   target database, without a password (required)
  --create                    create the database first (refused if it exists, unless --overwrite)
  --overwrite                 restore into an existing database
  --no-owner                  do not set object owners (pg_restore --no-owner)
  --password-secret REF       where the service reads the password: env:DRS_NAME or file:/abs/path under
                              the service's DR_SECRET_DIRS
  --location ID               read the backup's copy in this storage location
  --trust-unsigned-manifest   restore even if the manifest's signature does not verify (recorded as a warning)
  --no-wait                   print the PENDING recovery and return at once
  --json                      print the final recovery record as one JSON line instead of text
Environment: DR_API_KEY (required, role RECOVERY_ADMIN), DR_API_URL, DR_WAIT_SECONDS (default 3600).
Exit: 0 recovery COMPLETED, 1 recovery FAILED or request refused, 2 bad usage.
USAGE
}

backup="" url="" secret="" location="" create=false overwrite=false noowner=false trust=false wait=wait
while [ "$#" -gt 0 ]; do
  case "$1" in
    --backup) dr_need_value "$1" "${2-}"; backup="$2"; shift 2 ;;
    --url) dr_need_value "$1" "${2-}"; url="$2"; shift 2 ;;
    --create) create=true; shift ;;
    --overwrite) overwrite=true; shift ;;
    --no-owner) noowner=true; shift ;;
    --password-secret) dr_need_value "$1" "${2-}"; secret="$2"; shift 2 ;;
    --location) dr_need_value "$1" "${2-}"; dr_check_uuid --location "$2"; location="$2"; shift 2 ;;
    --trust-unsigned-manifest) trust=true; shift ;;
    --no-wait) wait=no-wait; shift ;;
    --json) DR_OUTPUT=json; shift ;;
    -h | --help) usage; exit 0 ;;
    *) dr_usage_error "unknown argument '$1'" ;;
  esac
done
[ -n "$backup" ] || dr_usage_error "--backup is required"
[ "$backup" = latest ] || dr_check_uuid --backup "$backup"
[ -n "$url" ] || dr_usage_error "--url is required"
[[ "$url" == postgres://* || "$url" == postgresql://* ]] || dr_usage_error "--url must be a postgresql:// URL"
dr_init

if [ "$backup" = latest ]; then backup=$(dr_latest_backup postgres); dr_info "restoring backup $backup"; fi
body=$(jq -cn --arg backup "$backup" --arg url "$url" --arg secret "$secret" --arg location "$location" \
  --argjson create "$create" --argjson overwrite "$overwrite" --argjson noowner "$noowner" --argjson trust "$trust" '
  {backupId: $backup, type: "FULL", overwrite: $overwrite, trustUnsignedManifest: $trust,
   target: ({url: $url, create: $create, noOwner: $noowner} + (if $secret != "" then {passwordSecret: $secret} else {} end))}
  + (if $location != "" then {storageLocationId: $location} else {} end)')
dr_run_recovery "$body" "$wait"
