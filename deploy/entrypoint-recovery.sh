#!/bin/sh
# waxctl / bytewax Helm chart compatibility: their init-recovery container runs
# `sh ./entrypoint-recovery.sh` in the image's WORKDIR with BYTEWAX_RECOVERY_DIRECTORY and
# BYTEWAX_RECOVERY_PARTS set. Same job as `entrypoint.sh init-recovery`.
set -eu
exec sh "$(dirname "$0")/entrypoint.sh" init-recovery
