#!/usr/bin/env bash
# Restores a configuration snapshot (a configuration backup) into a directory through the service (POST /recovery) and waits.
# shellcheck source=../lib/api.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/api.sh"
ENGINE=configuration
# shellcheck source=../lib/directory-recovery.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/directory-recovery.sh"
