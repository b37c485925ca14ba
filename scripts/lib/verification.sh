# shellcheck shell=bash disable=SC2034 # DR_OUTPUT is read by lib/api.sh
# Shared body of backup-validation.sh and recovery-validation.sh: runs a verification of mode $MODE
# (POST /backups/{id}/verify) and waits. Sourced after lib/api.sh, with MODE and DESCRIPTION set.

usage() {
  cat <<USAGE
Usage: $DR_SCRIPT --backup ID|latest [--engine postgres|filesystem|configuration] [--json]

$DESCRIPTION
Waits for the verification to end.
  --backup ID|latest   the backup, or the newest COMPLETED backup of --engine (required)
  --engine E           with --backup latest: the engine (default postgres)
  --json               print the verification record as one JSON line instead of text
Environment: DR_API_KEY (required, role BACKUP_ADMIN or OPERATOR), DR_API_URL, DR_WAIT_SECONDS (default 3600).
Exit: 0 verified ok, 1 problems found, verification failed to run or request refused, 2 bad usage.
USAGE
}

backup="" engine=postgres
while [ "$#" -gt 0 ]; do
  case "$1" in
    --backup) dr_need_value "$1" "${2-}"; backup="$2"; shift 2 ;;
    --engine) dr_need_value "$1" "${2-}"; engine="$2"; shift 2 ;;
    --json) DR_OUTPUT=json; shift ;;
    -h | --help) usage; exit 0 ;;
    *) dr_usage_error "unknown argument '$1'" ;;
  esac
done
[ -n "$backup" ] || dr_usage_error "--backup is required"
[ "$backup" = latest ] || dr_check_uuid --backup "$backup"
case "$engine" in postgres | filesystem | configuration) ;; *) dr_usage_error "--engine must be postgres, filesystem or configuration" ;; esac
dr_init

if [ "$backup" = latest ]; then backup=$(dr_latest_backup "$engine"); dr_info "verifying backup $backup"; fi
dr_run_verification "$backup" "$MODE"
