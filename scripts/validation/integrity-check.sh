#!/usr/bin/env bash
# Checks the integrity of the newest COMPLETED backups (checksum verification of each) and reports every failure.
# shellcheck source=../lib/api.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/api.sh"

usage() {
  cat <<USAGE
Usage: $DR_SCRIPT [--engine postgres|filesystem|configuration] [--plan ID] [--limit N] [--json]

Runs a checksum verification (manifest signature, every object's size and SHA-256) of each of the newest --limit
COMPLETED backups, one after the other, and reports each result. Suited to a nightly job.
  --engine E    only backups of this engine
  --plan ID     only backups of this plan
  --limit N     how many backups, newest first (1-200, default 20)
  --json        print one JSON line: {"checked","failed":[{"backupId","reason"}],"verified":[ids]}
Environment: DR_API_KEY (required, role BACKUP_ADMIN or OPERATOR), DR_API_URL, DR_WAIT_SECONDS (per backup).
Exit: 0 every backup verified ok (or none to check), 1 at least one failed or a request failed, 2 bad usage.
USAGE
}

engine="" plan="" limit=20
while [ "$#" -gt 0 ]; do
  case "$1" in
    --engine) dr_need_value "$1" "${2-}"; engine="$2"; shift 2 ;;
    --plan) dr_need_value "$1" "${2-}"; dr_check_uuid --plan "$2"; plan="$2"; shift 2 ;;
    --limit) dr_need_value "$1" "${2-}"; limit="$2"; shift 2 ;;
    --json) DR_OUTPUT=json; shift ;;
    -h | --help) usage; exit 0 ;;
    *) dr_usage_error "unknown argument '$1'" ;;
  esac
done
case "$engine" in "" | postgres | filesystem | configuration) ;; *) dr_usage_error "--engine must be postgres, filesystem or configuration" ;; esac
if ! [[ "$limit" =~ ^[0-9]+$ ]] || [ "$limit" -lt 1 ] || [ "$limit" -gt 200 ]; then dr_usage_error "--limit must be 1-200"; fi
dr_init

query="status=COMPLETED&limit=$limit${engine:+&engine=$engine}${plan:+&planId=$plan}"
page=$(dr_api GET "/backups?$query")
ids=()
if [ "$(jq '.items | length' <<<"$page")" -gt 0 ]; then mapfile -t ids < <(jq -r '.items[].id' <<<"$page"); fi
verified=() failed='[]'
for id in "${ids[@]}"; do
  if line=$(DR_OUTPUT=text dr_run_verification "$id" checksum 2>&1 >/dev/null); then
    verified+=("$id")
    dr_info "ok      $id"
  else
    reason="${line#*: }"
    failed=$(jq -c --arg id "$id" --arg reason "$reason" '. + [{backupId: $id, reason: $reason}]' <<<"$failed")
    dr_info "FAILED  $id: $reason"
  fi
done
count=$(jq length <<<"$failed")
result=$(jq -cn --argjson checked "${#ids[@]}" --argjson failed "$failed" --argjson verified "$(dr_json_array "${verified[@]}")" \
  '{checked: $checked, failed: $failed, verified: $verified}')
dr_result "$result" "${#ids[@]} backup(s) checked, ${#verified[@]} ok, $count failed"
[ "$count" -eq 0 ] || exit 1
