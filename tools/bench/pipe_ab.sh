#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# tools/bench/pipe_ab.sh: what the pipe saves on the userspace path; tools/bench/ab.sh with
# --off --no-pipe (see there). Options are ab.sh's.
exec "$(dirname "$0")/ab.sh" --off --no-pipe "$@"
