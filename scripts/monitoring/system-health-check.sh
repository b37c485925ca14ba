#!/usr/bin/env bash
# Checks the service's health (GET /actuator/health: database and storage indicators); no API key needed.
# shellcheck source=../lib/api.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/api.sh"

usage() {
  cat <<USAGE
Usage: $DR_SCRIPT [--probe health|liveness|readiness] [--json]

Asks the service for its health and prints each component's status.
  --probe P    health (default: every indicator), liveness (the process answers) or readiness (ready for traffic)
  --json       print the health document as one JSON line instead of text
Environment: DR_HEALTH_URL (default: DR_API_URL without /api/v1/disaster-recovery, i.e. http://localhost:8891),
  DR_HTTP_TIMEOUT (default 60).
Exit: 0 UP, 1 DOWN or unreachable, 2 bad usage.
USAGE
}

probe=health
while [ "$#" -gt 0 ]; do
  case "$1" in
    --probe) dr_need_value "$1" "${2-}"; probe="$2"; shift 2 ;;
    --json) DR_OUTPUT=json; shift ;;
    -h | --help) usage; exit 0 ;;
    *) dr_usage_error "unknown argument '$1'" ;;
  esac
done
case "$probe" in health) path=/actuator/health ;; liveness | readiness) path="/actuator/health/$probe" ;; *) dr_usage_error "--probe must be health, liveness or readiness" ;; esac
for tool in curl jq; do command -v "$tool" >/dev/null 2>&1 || dr_die "$tool is required but not installed"; done
dr_check_number DR_HTTP_TIMEOUT "$DR_HTTP_TIMEOUT"

# The health document comes with 200 (UP) or 503 (DOWN): read it in both cases, without the API key.
rc=0
out=$(curl --silent --connect-timeout 10 --max-time "$DR_HTTP_TIMEOUT" -H 'Accept: application/json' \
  --write-out '\n%{http_code}' "$DR_HEALTH_URL$path") || rc=$?
[ "$rc" -eq 0 ] || dr_die "$(dr_curl_problem "$rc" "$DR_HEALTH_URL$path")"
code="${out##*$'\n'}"
doc="${out%$'\n'*}"
jq -e 'type == "object" and has("status")' >/dev/null 2>&1 <<<"$doc" || dr_die "HTTP $code from $DR_HEALTH_URL$path is not a health document"
status=$(jq -r .status <<<"$doc")
text=$(jq -r --arg url "$DR_HEALTH_URL$path" '"\($url): \(.status)"
  + ((.details // {}) | to_entries | map("\n  \(.key): \(.value.status)" + (if .value.message then " (\(.value.message))" else "" end)) | join(""))' <<<"$doc")
if [ "$code" = 200 ] && [ "$status" = ok ]; then
  dr_result "$doc" "$text"
  exit 0
fi
if [ "$DR_OUTPUT" = json ]; then jq -c . <<<"$doc"; else printf '%s\n' "$text" >&2; fi
dr_die "service is not healthy (HTTP $code, status $status)"
