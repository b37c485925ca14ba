# shellcheck shell=bash disable=SC2034 # DR_OUTPUT is read by lib/api.sh
# Shared body of filesystem-recovery.sh and config-recovery.sh: restores a backup of engine $ENGINE into a
# directory through the service (POST /recovery) and waits. Sourced after lib/api.sh, with ENGINE set.

usage() {
  cat <<USAGE
Usage: $DR_SCRIPT --backup ID|latest --path /abs/dir [--overwrite] [--location ID] [--trust-unsigned-manifest]
                  [--no-wait] [--json]

Restores a $ENGINE backup into the directory --path (under the service's DR_RESTORE_ROOTS) and waits until the
recovery ends; its duration is the measured recovery time.
  --backup ID|latest          the backup to restore, or the newest COMPLETED $ENGINE backup (required)
  --path DIR                  absolute target directory; must be empty or absent unless --overwrite (required)
  --overwrite                 restore over a non-empty directory
  --location ID               read the backup's copy in this storage location (the primary one is lost)
  --trust-unsigned-manifest   restore even if the manifest's signature does not verify (recorded as a warning)
  --no-wait                   print the PENDING recovery and return at once
  --json                      print the final recovery record as one JSON line instead of text
Environment: DR_API_KEY (required, role RECOVERY_ADMIN), DR_API_URL, DR_WAIT_SECONDS (default 3600).
Exit: 0 recovery COMPLETED, 1 recovery FAILED or request refused, 2 bad usage.
USAGE
}

backup="" path="" location="" overwrite=false trust=false wait=wait
while [ "$#" -gt 0 ]; do
  case "$1" in
    --backup) dr_need_value "$1" "${2-}"; backup="$2"; shift 2 ;;
    --path) dr_need_value "$1" "${2-}"; path="$2"; shift 2 ;;
    --overwrite) overwrite=true; shift ;;
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
[ -n "$path" ] || dr_usage_error "--path is required"
[[ "$path" == /* ]] || dr_usage_error "--path must be an absolute path, got '$path'"
dr_init

if [ "$backup" = latest ]; then backup=$(dr_latest_backup "$ENGINE"); dr_info "restoring backup $backup"; fi
body=$(jq -cn --arg backup "$backup" --arg path "$path" --arg location "$location" \
  --argjson overwrite "$overwrite" --argjson trust "$trust" '
  {backupId: $backup, type: "FULL", target: {path: $path}, overwrite: $overwrite, trustUnsignedManifest: $trust}
  + (if $location != "" then {storageLocationId: $location} else {} end)')
dr_run_recovery "$body" "$wait"
