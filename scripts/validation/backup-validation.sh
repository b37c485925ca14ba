#!/usr/bin/env bash
# Checks a stored backup: the manifest's signature and every object's size and SHA-256 (verification mode checksum).
# shellcheck source=../lib/api.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/api.sh"
MODE=checksum
DESCRIPTION="Checks a stored backup: the manifest's signature and every object's size and SHA-256 (verification mode checksum)."
# shellcheck source=../lib/verification.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/verification.sh"
