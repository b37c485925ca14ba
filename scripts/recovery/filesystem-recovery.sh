#!/usr/bin/env bash
# Restores a directory tree (a filesystem backup) into a directory through the service (POST /recovery) and waits.
# shellcheck source=../lib/api.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/api.sh"
ENGINE=filesystem
# shellcheck source=../lib/directory-recovery.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/directory-recovery.sh"
