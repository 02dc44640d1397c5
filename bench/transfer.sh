#!/usr/bin/env bash
# transfer.sh: peer-to-peer transfer benchmark over loopback, one seeder to
# one leecher, for every pair of sower, libtorrent and aria2 that the issue
# asks for (same-client pairs and the cross pairs with sower on one side).
#
# For each pair and repeat it starts a tiny tracker that names the seeder,
# starts the seeder (without a re-check where the program allows it: aria2
# --bt-seed-unverified, libtorrent seed_mode; sower seed always verifies),
# waits until it serves (it listens; for sower, it also printed that it is
# seeding: its port is bound, and so accepts connections, while it still
# verifies), then times the leecher from start to its exit after a
# verified download, and compares the result with the original (cmp).
#
# Printed per pair, medians over the repeats: MB/s (10^6 bytes / s of the
# leecher's wall time), CPU seconds (user+sys) of the seeder during the
# transfer (from /proc/PID/stat) and of the leecher's whole run (from
# /usr/bin/time), and the leecher's peak RSS.
#
# Environment: SIZE (bytes, default 1 GiB), REPEATS (default 3), PAIRS
# (space-separated seeder>leecher, default all), LEECH_TIMEOUT (seconds
# a leecher may take, default 300; a pair that fails is reported), SETTLE
# (seconds between deleting a run's download and the next run, default 5),
# WORK (scratch folder, default a fresh one under /tmp, removed at the end).
#
# A pair may end in :ENC to set both sides' encryption (MSE): rc4 (sower
# --encryption require; libtorrent forced, RC4 only), plain (sower
# --encryption off; libtorrent MSE disabled) or nothing for each program's
# default (sower's prefer makes RC4 between two sowers). aria2 only takes
# the default. ENCRYPTION=rc4 makes the default PAIRS the encryption
# comparison: sower and libtorrent pairs, each plain and rc4, in the same
# run, and adds a line of CPU seconds per GiB (seeder and leecher).
#
#   bench/transfer.sh                      # full run, ~10 minutes
#   SIZE=268435456 REPEATS=1 bench/transfer.sh   # quick run
#   ENCRYPTION=rc4 SIZE=536870912 bench/transfer.sh   # RC4 against plaintext
set -euo pipefail

SIZE=${SIZE:-1073741824}
REPEATS=${REPEATS:-3}
LEECH_TIMEOUT=${LEECH_TIMEOUT:-300}
SETTLE=${SETTLE:-5}
ENCRYPTION=${ENCRYPTION:-}
case $ENCRYPTION in
'') PAIRS=${PAIRS:-"sower>sower libtorrent>libtorrent aria2>aria2 sower>libtorrent libtorrent>sower sower>aria2 aria2>sower"} ;;
rc4) PAIRS=${PAIRS:-"sower>sower:plain sower>sower:rc4 libtorrent>libtorrent:plain libtorrent>libtorrent:rc4"} ;;
*) echo "transfer.sh: ENCRYPTION must be rc4 or unset" >&2; exit 1 ;;
esac
ROOT=$(cd "$(dirname "$0")/.." && pwd)
HELPER=$ROOT/bench/transfer/peer.py
TICK=$(getconf CLK_TCK)

for p in aria2c mktorrent /usr/bin/python3 /usr/bin/time go cmp ss; do
	command -v "$p" >/dev/null || { echo "transfer.sh: $p not found (scripts/test.sh installs the programs)" >&2; exit 1; }
done

WORK=${WORK:-$(mktemp -d /tmp/sower-transfer.XXXXXX)}
mkdir -p "$WORK"
PIDS=()
cleanup() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

echo "building sower" >&2
(cd "$ROOT" && go build -o "$WORK/sower" ./cmd/sower)
SOWER=$WORK/sower

echo "making $SIZE bytes of data" >&2
mkdir -p "$WORK/data"
head -c "$SIZE" /dev/urandom >"$WORK/data/bench.bin"
# Write it out now: otherwise the kernel writes the new file back to disk
# in the middle of the first runs, 30 s after it was made.
sync "$WORK/data/bench.bin"

# freeport prints a TCP port nobody listens on.
freeport() {
	local p
	while :; do
		p=$((20000 + RANDOM % 40000))
		ss -ltnH "sport = :$p" | grep -q . || { echo "$p"; return; }
	done
}

# waitlisten PORT PID: until something listens on PORT (60 s at most).
waitlisten() {
	for _ in $(seq 600); do
		ss -ltnH "sport = :$1" | grep -q . && return 0
		kill -0 "$2" 2>/dev/null || { echo "transfer.sh: seeder exited" >&2; return 1; }
		sleep 0.1
	done
	echo "transfer.sh: nothing listens on $1" >&2
	return 1
}

# waitseeding LOG PID: wait until a sower seeder says it is seeding, i.e.
# its verification is over and it answers requests.
waitseeding() {
	for _ in $(seq 1200); do
		grep -q "^seeding" "$1" && return 0
		kill -0 "$2" 2>/dev/null || { echo "transfer.sh: seeder exited" >&2; return 1; }
		sleep 0.05
	done
	echo "transfer.sh: the seeder did not finish verifying" >&2
	return 1
}

# cputicks PID: user+sys clock ticks of the process so far.
cputicks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

TRACKER_PORT=$(freeport)
mktorrent -l 20 -a "http://127.0.0.1:$TRACKER_PORT/announce" -o "$WORK/bench.torrent" "$WORK/data/bench.bin" >/dev/null

ARIA_COMMON=(--no-conf=true --interface=127.0.0.1 --disable-ipv6=true --enable-dht=false --enable-dht6=false
	--bt-enable-lpd=false --enable-peer-exchange=false --file-allocation=none --auto-file-renaming=false
	--show-console-readout=false --summary-interval=0 --console-log-level=warn)

# encflags CLIENT ENC: the client's arguments for encryption ENC (see
# above), in ENCFLAGS.
encflags() {
	ENCFLAGS=()
	case $1:$2 in
	*:) ;;
	sower:rc4) ENCFLAGS=(--encryption require) ;;
	sower:plain) ENCFLAGS=(--encryption off) ;;
	libtorrent:rc4 | libtorrent:plain) ENCFLAGS=("$2") ;;
	*) echo "transfer.sh: no encryption mode $2 for $1" >&2; exit 1 ;;
	esac
}

# startseed CLIENT PORT LOG ENC: start the seeder in the background; its pid in SEED_PID.
startseed() {
	encflags "$1" "$4"
	case $1 in
	sower) "$SOWER" seed --no-dht --port "$2" --quiet "${ENCFLAGS[@]}" "$WORK/bench.torrent" "$WORK/data" >"$3" 2>&1 & ;;
	aria2) aria2c "${ARIA_COMMON[@]}" --dir="$WORK/data" --listen-port="$2" --seed-ratio=0.0 \
		--bt-seed-unverified=true "$WORK/bench.torrent" >"$3" 2>&1 & ;;
	libtorrent) /usr/bin/python3 "$HELPER" lt-seed "$WORK/bench.torrent" "$WORK/data" "$2" "${ENCFLAGS[@]}" >"$3" 2>&1 & ;;
	esac
	SEED_PID=$!
}

# leechcmd CLIENT PORT OUT ENC: the leecher's command line.
leechcmd() {
	encflags "$1" "$4"
	case $1 in
	sower) LEECH=("$SOWER" get --no-dht -o "$3" --port "$2" --quiet "${ENCFLAGS[@]}" "$WORK/bench.torrent") ;;
	aria2) LEECH=(aria2c "${ARIA_COMMON[@]}" --dir="$3" --listen-port="$2" --seed-time=0 "$WORK/bench.torrent") ;;
	libtorrent) LEECH=(/usr/bin/python3 "$HELPER" lt-get "$WORK/bench.torrent" "$3" "$2" "${ENCFLAGS[@]}") ;;
	esac
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

RESULTS=$WORK/results
: >"$RESULTS"
# Rounds outside, pairs inside: the machine's state drifts (other load, the
# kernel writing back earlier runs' files), and interleaving spreads the
# drift over every pair instead of loading it onto whichever runs first.
for r in $(seq "$REPEATS"); do
	for pair in $PAIRS; do
		enc=
		clients=$pair
		if [[ $pair == *:* ]]; then
			enc=${pair#*:}
			clients=${pair%%:*}
		fi
		s=${clients%>*}
		l=${clients#*>}
		seed_port=$(freeport)
		/usr/bin/python3 "$HELPER" tracker "$TRACKER_PORT" "$seed_port" &
		tracker_pid=$!
		PIDS+=("$tracker_pid")
		waitlisten "$TRACKER_PORT" "$tracker_pid"
		startseed "$s" "$seed_port" "$WORK/seed.log" "$enc"
		PIDS+=("$SEED_PID")
		if ! waitlisten "$seed_port" "$SEED_PID" || { [ "$s" = sower ] && ! waitseeding "$WORK/seed.log" "$SEED_PID"; }; then
			echo "transfer.sh: $pair: the seeder did not start; its log:" >&2
			tail -20 "$WORK/seed.log" >&2
			kill "$SEED_PID" "$tracker_pid" 2>/dev/null || true
			wait "$SEED_PID" "$tracker_pid" 2>/dev/null || true
			PIDS=()
			echo "$pair failed" >>"$RESULTS"
			continue
		fi
		out=$WORK/out
		rm -rf "$out"
		mkdir -p "$out"
		leechcmd "$l" "$(freeport)" "$out" "$enc"
		c0=$(cputicks "$SEED_PID")
		t0=$(date +%s.%N)
		ok=1
		if ! /usr/bin/time -f "%U %S %M" -o "$WORK/time" timeout "$LEECH_TIMEOUT" "${LEECH[@]}" >"$WORK/leech.log" 2>&1; then
			echo "transfer.sh: $pair: leecher failed or timed out (${LEECH_TIMEOUT}s); its log:" >&2
			tail -20 "$WORK/leech.log" >&2
			ok=0
		fi
		t1=$(date +%s.%N)
		c1=$(cputicks "$SEED_PID")
		kill "$SEED_PID" "$tracker_pid"
		wait "$SEED_PID" "$tracker_pid" 2>/dev/null || true
		PIDS=()
		if [ "$ok" = 1 ] && ! cmp -s "$WORK/data/bench.bin" "$out/bench.bin"; then
			echo "transfer.sh: $pair: downloaded data differs" >&2
			ok=0
		fi
		# Free the download's page cache now and let it settle, so every
		# leecher starts from the same memory: on a VM that hands freed
		# pages back to its host, memory freed a moment ago is much cheaper
		# to fill than memory freed seconds ago (a 1 GiB download spent
		# 0.6-0.8 s of system time right after the previous output was
		# deleted, 1.25 s six seconds after), and which one a leecher got
		# depended on the program that ran before it.
		rm -rf "$out"
		sleep "$SETTLE"
		if [ "$ok" = 0 ]; then
			echo "$pair failed" >>"$RESULTS"
			continue
		fi
		read -r lu ls rss <"$WORK/time"
		awk -v pair="$pair" -v size="$SIZE" -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" -v tick="$TICK" \
			-v lu="$lu" -v ls="$ls" -v rss="$rss" 'BEGIN {
			printf "%s %.1f %.2f %.2f %.0f\n", pair, size / (t1 - t0) / 1e6, (c1 - c0) / tick, lu + ls, rss / 1024
		}' | tee -a "$RESULTS" >&2
	done
done

printf '\n%d MiB single file, loopback, %d run(s) per pair, medians\n' $((SIZE >> 20)) "$REPEATS"
printf '%-22s %8s %12s %12s %14s\n' "seeder > leecher" "MB/s" "seed CPU s" "leech CPU s" "leech RSS MiB"
for pair in $PAIRS; do
	col() { awk -v p="$pair" -v c="$1" '$1 == p && $2 != "failed" { print $c }' "$RESULTS" | median; }
	fails=$(awk -v p="$pair" '$1 == p && $2 == "failed"' "$RESULTS" | wc -l)
	[ "$fails" = 0 ] || echo "$pair: $fails of $REPEATS runs failed (see above)"
	printf '%-22s %8s %12s %12s %14s\n' "$pair" "$(col 2)" "$(col 3)" "$(col 4)" "$(col 5)"
done
if [ -n "$ENCRYPTION" ]; then
	printf '\nCPU seconds per GiB moved (medians), and what RC4 adds over plain\n'
	printf '%-22s %12s %12s\n' "seeder > leecher" "seed CPU/GiB" "leech CPU/GiB"
	for pair in $PAIRS; do
		col() { awk -v p="$pair" -v c="$1" '$1 == p && $2 != "failed" { print $c }' "$RESULTS" | median; }
		printf '%-22s %12s %12s\n' "$pair" \
			"$(awk -v v="$(col 3)" -v s="$SIZE" 'BEGIN { if (v == "-") print "-"; else printf "%.2f", v * 1073741824 / s }')" \
			"$(awk -v v="$(col 4)" -v s="$SIZE" 'BEGIN { if (v == "-") print "-"; else printf "%.2f", v * 1073741824 / s }')"
	done
fi
