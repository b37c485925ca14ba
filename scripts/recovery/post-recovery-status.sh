#!/usr/bin/env bash
# Reports a recovery run outside the service (POST /recovery/external, the "post recovery status" of the earlier Spring design), so that
# GET /recovery lists it with its measured duration.
# shellcheck source=../lib/api.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/api.sh"

usage() {
  cat <<USAGE
Usage: $DR_SCRIPT --status completed|failed --target NAME --recovery-point TIME --started TIME
                  [--finished TIME] [--backup ID] [--error TEXT] [--notes TEXT] [--json]

Records a recovery that ran outside the service (by hand with pg_restore/tar, or another tool) as a recovery of
type EXTERNAL. Times are ISO 8601 with a zone, e.g. 2026-11-24T13:00:00Z (\`date -u +%Y-%m-%dT%H:%M:%SZ\`).
  --status S             completed or failed (required)
  --target NAME          what was recovered: a database name, host:/path, a system (required)
  --recovery-point TIME  the point in time the recovered data reflects (required)
  --started TIME         when the recovery started (required)
  --finished TIME        when it ended (default: now)
  --backup ID            the backup of this service that was restored, if any
  --error TEXT           why it failed (required with --status failed)
  --notes TEXT           free text: tool, operator, ticket
  --json                 print the stored record as one JSON line instead of text
Environment: DR_API_KEY (required, role RECOVERY_ADMIN or OPERATOR), DR_API_URL.
Exit: 0 recorded, 1 request refused or failed, 2 bad usage.
USAGE
}

status="" target="" point="" started="" finished="" backup="" error="" notes=""
while [ "$#" -gt 0 ]; do
  case "$1" in
    --status) dr_need_value "$1" "${2-}"; status="$2"; shift 2 ;;
    --target) dr_need_value "$1" "${2-}"; target="$2"; shift 2 ;;
    --recovery-point) dr_need_value "$1" "${2-}"; point="$2"; shift 2 ;;
    --started) dr_need_value "$1" "${2-}"; started="$2"; shift 2 ;;
    --finished) dr_need_value "$1" "${2-}"; finished="$2"; shift 2 ;;
    --backup) dr_need_value "$1" "${2-}"; dr_check_uuid --backup "$2"; backup="$2"; shift 2 ;;
    --error) dr_need_value "$1" "${2-}"; error="$2"; shift 2 ;;
    --notes) dr_need_value "$1" "${2-}"; notes="$2"; shift 2 ;;
    --json) DR_OUTPUT=json; shift ;;
    -h | --help) usage; exit 0 ;;
    *) dr_usage_error "unknown argument '$1'" ;;
  esac
done
case "$status" in
  completed | COMPLETED | failed | FAILED) ;;
  "") dr_usage_error "--status is required" ;;
  *) dr_usage_error "--status must be completed or failed, got '$status'" ;;
esac
[ -n "$target" ] || dr_usage_error "--target is required"
[ -n "$point" ] || dr_usage_error "--recovery-point is required"
[ -n "$started" ] || dr_usage_error "--started is required"
if [[ "$status" == [fF]* ]] && [ -z "$error" ]; then dr_usage_error "--error is required with --status failed"; fi
[ -n "$finished" ] || finished=$(date -u +%Y-%m-%dT%H:%M:%SZ)
dr_init

body=$(jq -cn --arg status "$status" --arg target "$target" --arg point "$point" --arg started "$started" \
  --arg finished "$finished" --arg backup "$backup" --arg error "$error" --arg notes "$notes" '
  {status: ($status | ascii_upcase), targetName: $target, recoveryPoint: $point, startedAt: $started, finishedAt: $finished}
  + (if $backup != "" then {backupId: $backup} else {} end)
  + (if $error != "" then {error: $error} else {} end)
  + (if $notes != "" then {notes: $notes} else {} end)')
record=$(dr_api POST /recovery/external "$body")
dr_result "$record" "$(jq -r '"recovery \(.id) recorded: \(.target.name) \(.status) (external), \(.durationMs) ms, recovery point \(.target.recoveryPoint)"' <<<"$record")"
