# shellcheck shell=bash
# Shared helpers of the disaster recovery scripts: sourced, never run. They call the service's REST API with curl
# and jq and nothing else.
#
# Environment:
#   DR_API_URL       API base URL (default http://localhost:8891/api/v1/disaster-recovery)
#   DR_API_KEY       API key sent as X-API-Key (required by every script except the health check). It is given
#                    to curl through a file descriptor, so it shows in no process list, and it is never printed.
#   DR_HEALTH_URL    health base URL (default: DR_API_URL without /api/v1/disaster-recovery)
#   DR_WAIT_SECONDS  how long to wait for a job to end (default 3600)
#   DR_POLL_SECONDS  interval between polls (default 2)
#   DR_HTTP_TIMEOUT  time limit of one HTTP request in seconds (default 60)
#
# The helpers end with `|| exit 1` after each request, so that they also stop when called where errexit is off
# (in an `if` condition, e.g. integrity-check.sh).
# Exit codes of the scripts: 0 success, 1 failure (job FAILED, verification not ok, HTTP error, service
# unreachable, wait timed out), 2 bad usage (unknown option, missing argument, DR_API_KEY unset).

set -euo pipefail
shopt -s inherit_errexit

DR_API_URL="${DR_API_URL:-http://localhost:8891/api/v1/disaster-recovery}"
DR_API_URL="${DR_API_URL%/}"
DR_HEALTH_URL="${DR_HEALTH_URL:-${DR_API_URL%/api/v1/disaster-recovery}}"
DR_HEALTH_URL="${DR_HEALTH_URL%/}"
DR_WAIT_SECONDS="${DR_WAIT_SECONDS:-3600}"
DR_POLL_SECONDS="${DR_POLL_SECONDS:-2}"
DR_HTTP_TIMEOUT="${DR_HTTP_TIMEOUT:-60}"
DR_SCRIPT="$(basename "$0")"
# Output format: "text" (default) or "json" (one JSON line on stdout); set by --json.
DR_OUTPUT="${DR_OUTPUT:-text}"

# Prints "script: message" on stderr and exits 1.
dr_die() {
  printf '%s: %s\n' "$DR_SCRIPT" "$*" >&2
  exit 1
}

# Prints "script: message" and a hint on stderr and exits 2 (bad usage).
dr_usage_error() {
  printf "%s: %s\nTry '%s --help'.\n" "$DR_SCRIPT" "$*" "$DR_SCRIPT" >&2
  exit 2
}

# Progress and notes on stderr (stdout carries only the result), unless --json is set.
dr_info() {
  if [ "$DR_OUTPUT" = text ]; then printf '%s\n' "$*" >&2; fi
}

# dr_need_value OPTION "${2-}": exits 2 unless the option has a non-empty value.
dr_need_value() {
  if [ -z "${2:-}" ] || [[ "$2" == --* ]]; then dr_usage_error "option $1 needs a value"; fi
}

# dr_check_number NAME VALUE: exits 2 unless VALUE is a non-negative integer.
dr_check_number() {
  if ! [[ "$2" =~ ^[0-9]+$ ]]; then dr_usage_error "$1 must be a whole number of seconds, got '$2'"; fi
}

# Checks the tools and the settings every API script needs: curl, jq, DR_API_KEY.
dr_init() {
  local tool
  for tool in curl jq; do
    command -v "$tool" >/dev/null 2>&1 || dr_die "$tool is required but not installed"
  done
  [ -n "${DR_API_KEY:-}" ] || dr_usage_error "DR_API_KEY is not set (export the API key of a role allowed to do this)"
  dr_check_number DR_WAIT_SECONDS "$DR_WAIT_SECONDS"
  dr_check_number DR_POLL_SECONDS "$DR_POLL_SECONDS"
  dr_check_number DR_HTTP_TIMEOUT "$DR_HTTP_TIMEOUT"
}

# Explains a curl exit code other than an HTTP error.
dr_curl_problem() {
  case "$1" in
    6) printf 'cannot resolve the host of %s' "$2" ;;
    7) printf 'cannot connect to %s (is the service running?)' "$2" ;;
    28) printf 'no answer from %s within %s s' "$2" "$DR_HTTP_TIMEOUT" ;;
    35 | 51 | 53 | 58 | 59 | 60 | 77 | 80 | 83 | 90 | 91) printf 'TLS error talking to %s (curl exit %s)' "$2" "$1" ;;
    *) printf 'request to %s failed (curl exit %s)' "$2" "$1" ;;
  esac
}

# Turns an error response into one line: "HTTP 400 VALIDATION_FAILED: message (field: problem; ...)".
dr_error_line() {
  local status="$1" body="$2" line
  line=$(jq -r '
      if type == "object" and has("code") then
        "\(.code): \(.message)"
        + (if ((.details // []) | length) > 0
           then " (" + ([.details[] | "\(.field): \(.message)"] | join("; ")) + ")" else "" end)
      else empty end' <<<"$body" 2>/dev/null || true)
  if [ -z "$line" ]; then line=$(printf '%s' "$body" | tr -s '\n' ' ' | cut -c1-300); fi
  printf 'HTTP %s %s' "$status" "${line:-(no body)}"
}

# dr_request URL METHOD [BODY]: one HTTP request. Prints the response body on stdout and returns 0 on a 2xx;
# prints a one-line error on stderr and returns 1 otherwise. Sets DR_HTTP_STATUS (only when called directly,
# not in a command substitution). With DR_API_KEY set, sends it as X-API-Key through a file descriptor.
dr_request() {
  local url="$1" method="$2" body="${3-}" out rc=0
  local args=(--silent --fail-with-body --connect-timeout 10 --max-time "$DR_HTTP_TIMEOUT"
    -X "$method" -H 'Accept: application/json' --write-out '\n%{http_code}')
  if [ -n "$body" ]; then args+=(-H 'Content-Type: application/json' --data-binary @-); fi
  if [ -n "${DR_API_KEY:-}" ]; then
    out=$(printf '%s' "$body" | curl "${args[@]}" -H @<(printf 'X-API-Key: %s\n' "$DR_API_KEY") "$url") || rc=$?
  else
    out=$(printf '%s' "$body" | curl "${args[@]}" "$url") || rc=$?
  fi
  DR_HTTP_STATUS="${out##*$'\n'}"
  local response="${out%$'\n'*}"
  [ "$out" != "$DR_HTTP_STATUS" ] || response=""
  if [ "$rc" -eq 0 ]; then
    printf '%s' "$response"
    return 0
  fi
  if [ "$rc" -eq 22 ]; then
    printf '%s: %s %s: %s\n' "$DR_SCRIPT" "$method" "${url#"$DR_API_URL"}" "$(dr_error_line "$DR_HTTP_STATUS" "$response")" >&2
  else
    printf '%s: %s\n' "$DR_SCRIPT" "$(dr_curl_problem "$rc" "$url")" >&2
  fi
  return 1
}

# dr_api METHOD PATH [BODY]: a request to DR_API_URL + PATH (PATH starts with /).
dr_api() {
  dr_request "$DR_API_URL$2" "$1" "${3-}"
}

# dr_wait PATH WHAT: polls GET PATH until its status is final (COMPLETED, FAILED, DELETED, or for a recovery
# REJECTED or EXPIRED); prints the final record.
# Exits 1 when DR_WAIT_SECONDS pass first.
dr_wait() {
  local path="$1" what="$2" record status deadline announced=""
  deadline=$((SECONDS + DR_WAIT_SECONDS))
  while :; do
    record=$(dr_api GET "$path") || exit 1
    status=$(jq -r '.status' <<<"$record")
    case "$status" in
      COMPLETED | FAILED | DELETED | REJECTED | EXPIRED)
        printf '%s' "$record"
        return 0
        ;;
      AWAITING_APPROVAL)
        if [ -z "${announced:-}" ]; then
          dr_info "$what awaits a second RECOVERY_ADMIN's approval (POST $path/approve)"
          announced=1
        fi
        ;;
    esac
    if [ "$SECONDS" -ge "$deadline" ]; then
      dr_die "$what is still $status after ${DR_WAIT_SECONDS} s; follow it with GET $path"
    fi
    sleep "$DR_POLL_SECONDS"
  done
}

# dr_latest_backup ENGINE: the id of the newest COMPLETED backup of that engine; exits 1 if there is none.
dr_latest_backup() {
  local page id
  page=$(dr_api GET "/backups?status=COMPLETED&engine=$1&limit=1") || exit 1
  id=$(jq -r '.items[0].id // empty' <<<"$page")
  [ -n "$id" ] || dr_die "no COMPLETED $1 backup found"
  printf '%s' "$id"
}

# dr_check_uuid NAME VALUE: exits 2 unless VALUE looks like a UUID.
dr_check_uuid() {
  if ! [[ "$2" =~ ^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$ ]]; then
    dr_usage_error "$1 must be a UUID, got '$2'"
  fi
}

# dr_json_array VALUE...: the values as a JSON array of strings.
dr_json_array() {
  if [ "$#" -eq 0 ]; then printf '[]'; else printf '%s\n' "$@" | jq -R . | jq -cs .; fi
}

# dr_result RECORD TEXT: prints the result: RECORD as one JSON line (--json) or TEXT.
dr_result() {
  if [ "$DR_OUTPUT" = json ]; then jq -c . <<<"$1"; else printf '%s\n' "$2"; fi
}

# dr_run_backup BODY [--no-wait]: POST /backups, waits for the end, prints the result; exits 1 on FAILED.
dr_run_backup() {
  local body="$1" wait="${2:-wait}" created id record status text
  created=$(dr_api POST /backups "$body") || exit 1
  id=$(jq -r .id <<<"$created")
  if [ "$wait" = no-wait ]; then
    dr_result "$created" "backup $id $(jq -r .status <<<"$created")"
    return 0
  fi
  dr_info "backup $id started; waiting for it to end"
  record=$(dr_wait "/backups/$id" "backup $id") || exit 1
  status=$(jq -r .status <<<"$record")
  if [ "$status" = COMPLETED ]; then
    text=$(jq -r '"backup \(.id) COMPLETED: engine \(.engine), \(.sizeBytes) bytes, \(.storedBytes) stored, sha256 \(.sha256), \(.durationMs) ms"' <<<"$record")
    dr_result "$record" "$text"
    return 0
  fi
  if [ "$DR_OUTPUT" = json ]; then jq -c . <<<"$record"; fi
  dr_die "backup $id $status: $(jq -r '.error // "no reason recorded"' <<<"$record")"
}

# dr_run_recovery BODY [no-wait]: POST /recovery, waits for the end, prints the result; exits 1 on FAILED.
dr_run_recovery() {
  local body="$1" wait="${2:-wait}" created id record status text
  created=$(dr_api POST /recovery "$body") || exit 1
  id=$(jq -r .id <<<"$created")
  if [ "$wait" = no-wait ]; then
    dr_result "$created" "recovery $id $(jq -r .status <<<"$created")"
    return 0
  fi
  dr_info "recovery $id started; waiting for it to end"
  record=$(dr_wait "/recovery/$id" "recovery $id") || exit 1
  status=$(jq -r .status <<<"$record")
  if [ "$status" = COMPLETED ]; then
    text=$(jq -r '"recovery \(.id) COMPLETED: backup \(.backupId) into \(.target | tostring), \(.bytesRestored) bytes in \(.durationMs) ms"
      + (if (.warnings | length) > 0 then "\nwarning: " + (.warnings | join("\nwarning: ")) else "" end)' <<<"$record")
    dr_result "$record" "$text"
    return 0
  fi
  if [ "$DR_OUTPUT" = json ]; then jq -c . <<<"$record"; fi
  dr_die "recovery $id $status: $(jq -r '.error // "no reason recorded"' <<<"$record")"
}

# dr_run_verification BACKUP_ID MODE: POST /backups/{id}/verify, waits, prints the result; exits 1 unless ok.
dr_run_verification() {
  local id="$1" mode="$2" created vid record status ok text
  created=$(dr_api POST "/backups/$id/verify" "$(jq -cn --arg mode "$mode" '{mode: $mode, waitSeconds: 30}')") || exit 1
  vid=$(jq -r .id <<<"$created")
  record=$(dr_wait "/verifications/$vid" "verification $vid of backup $id") || exit 1
  status=$(jq -r .status <<<"$record")
  ok=$(jq -r .ok <<<"$record")
  if [ "$status" = COMPLETED ] && [ "$ok" = true ]; then
    text=$(jq -r '"backup \(.backupId) verified (\(.mode)): ok, \(.bytesRead) bytes read in \(.durationMs) ms (verification \(.id))"' <<<"$record")
    dr_result "$record" "$text"
    return 0
  fi
  if [ "$DR_OUTPUT" = json ]; then jq -c . <<<"$record"; fi
  if [ "$status" = COMPLETED ]; then
    dr_die "backup $id FAILED verification ($mode, verification $vid): $(jq -r '.problems | join("; ")' <<<"$record")"
  fi
  dr_die "verification $vid of backup $id could not run: $(jq -r '.error // "no reason recorded"' <<<"$record")"
}
