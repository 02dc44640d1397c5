#!/usr/bin/env bash
# ab.sh: compare two sower builds (or two flag sets) on the same 1:1 loopback
# transfer, alternating A and B so that a machine whose load drifts treats
# both alike. Each round starts one `sower seed` of the build under test and
# times one `sower get --peer` of the same build.
#
#   bench/transfer/ab.sh /tmp/sower.old /tmp/sower.new           # 3 rounds, 1 GiB
#   ROUNDS=5 SIZE=268435456 bench/transfer/ab.sh A B
#   GET_FLAGS_B=--sync bench/transfer/ab.sh /tmp/sower /tmp/sower   # flags instead of builds
#
# Printed per run: build, the leecher's "complete in" time (engine start to
# the last verified piece), its wall time to exit, user and system CPU
# seconds and peak RSS (/usr/bin/time), and the seeder's CPU seconds during
# the transfer (/proc/PID/stat). A median line per side ends the output.
set -euo pipefail
A=${1:?usage: ab.sh SOWER_A SOWER_B}
B=${2:?usage: ab.sh SOWER_A SOWER_B}
SIZE=${SIZE:-1073741824}
ROUNDS=${ROUNDS:-3}
PORT=${PORT:-7071}
TICK=$(getconf CLK_TCK)
WORK=$(mktemp -d /tmp/sower-ab.XXXXXX)
trap 'pkill -f "seed --no-dht --port $PORT" 2>/dev/null || true; rm -rf "$WORK"' EXIT
mkdir -p "$WORK/src"
head -c "$SIZE" /dev/urandom >"$WORK/src/big"
"$A" create --quiet -o "$WORK/big.torrent" --piece-length 1MiB --tracker http://127.0.0.1:1/announce "$WORK/src/big" >/dev/null

# run SIDE BIN FLAGS: one seed and one get of BIN; prints one result line.
run() {
	local side=$1 bin=$2 flags=$3 sp s0 s1 out
	nice -n -19 "$bin" seed --no-dht --port "$PORT" "$WORK/big.torrent" "$WORK/src" >"$WORK/seed.log" 2>&1 &
	sp=$!
	# Ready once verified: the port is bound, and accepts, before that.
	for _ in $(seq 600); do
		grep -q "^seeding" "$WORK/seed.log" && break
		sleep 0.05
	done
	rm -rf "$WORK/dl"
	sync
	s0=$(awk '{print $14+$15}' "/proc/$sp/stat")
	# shellcheck disable=SC2086
	out=$({ nice -n -19 /usr/bin/time -f "TIME %e %U %S %M" "$bin" get $flags --no-dht --port 0 \
		-o "$WORK/dl" --peer "127.0.0.1:$PORT" "$WORK/big.torrent"; } 2>&1 || true)
	s1=$(awk '{print $14+$15}' "/proc/$sp/stat")
	kill -INT "$sp"
	wait "$sp" 2>/dev/null || true
	cmp -s "$WORK/dl/big" "$WORK/src/big" || { echo "$side: downloaded data differs" >&2; exit 1; }
	local complete time
	complete=$(grep -a -o 'complete in [0-9.]*m\?s' <<<"$out" |
		awk '{v = $3; if (v ~ /ms$/) { sub(/ms$/, "", v); v /= 1000 } else sub(/s$/, "", v); print v}')
	time=$(grep -a -o 'TIME.*' <<<"$out" | cut -d' ' -f2-)
	printf '%s complete %s wall/user/sys/rssKB %s seedcpu %s\n' "$side" "$complete" "$time" \
		"$(awk -v a="$s0" -v b="$s1" -v t="$TICK" 'BEGIN{printf "%.2f", (b-a)/t}')"
}

for _ in $(seq "$ROUNDS"); do
	run A "$A" "${GET_FLAGS_A:-}"
	run B "$B" "${GET_FLAGS_B:-}"
done | tee "$WORK/results"
for side in A B; do
	awk -v s="$side" 'BEGIN { n = 0 } $1==s {c[n]=$3; w[n]=$5; cpu[n]=$6+$7; sc[n]=$10; n++}
		function med(a, n,   i, j, t) { for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t } return a[int(n/2)] }
		END { printf "%s median: complete %.2f s, wall %.2f s (%.0f MB/s), leech CPU %.2f s, seed CPU %.2f s\n", s, med(c, n), med(w, n), '"$SIZE"'/med(w, n)/1e6, med(cpu, n), med(sc, n) }' "$WORK/results"
done
