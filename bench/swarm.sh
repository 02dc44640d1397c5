#!/usr/bin/env bash
# Swarm benchmark of issue 4: one seed limited to RATE bytes/s and N
# leechers released at once on 127.0.0.1, with Sower (both end-game
# policies and super-seeding), libtorrent (python3-libtorrent, with and
# without super-seeding) and aria2, in one run, printed side by side as
# Markdown tables: last completion / ideal, seed copies, wasted bytes.
#
# Usage: bench/swarm.sh                        (from anywhere; default N=6, SIZE=96MiB)
#        N=6,32 SIZE=96MiB,256MiB bench/swarm.sh   (the full run of docs/benchmarks.md)
# Environment:
#   N      numbers of leechers, comma-separated (default 6)
#   SIZE   file sizes, comma-separated, KiB/MiB/GiB suffixes (default 96MiB)
#   IMPL   implementations (default sower,libtorrent,aria2)
#   MODES  only these modes (default all: endgame=all-requested,
#          endgame=all-started, default, super-seed)
#   RATE   the seed's upload limit in bytes/s (default 8000000)
#   ARGS   more flags for the driver, e.g. "-debug" (Sower debug logs and
#          per-peer stats, kept in the scratch folder) or "-dir /dev/shm/x"
# Needs aria2c and python3-libtorrent (scripts/test.sh installs them).
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=$(mktemp -d)
trap 'rm -rf "$BIN"' EXIT
go build -o "$BIN/swarm" ./bench/swarm
args=(-n "${N:-6}" -size "${SIZE:-96MiB}" -impl "${IMPL:-sower,libtorrent,aria2}" -rate "${RATE:-8000000}")
if [[ -n "${MODES:-}" ]]; then
	args+=(-modes "$MODES")
fi
# shellcheck disable=SC2086 # ARGS is a list of flags
"$BIN/swarm" "${args[@]}" ${ARGS:-}
