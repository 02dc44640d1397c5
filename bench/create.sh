#!/usr/bin/env bash
# Benchmark of torrent creation: `sower create` against `mktorrent -t 2`
# and libtorrent's create_torrent (v1) on one 2 GiB file, in one run, with
# the same 2 MiB piece length, so that all three hash the same data the same
# way (and must produce the same info-hash).
#
# Warm cache: each tool runs once untimed, then RUNS timed runs; the best is
# reported. Cold cache: when root, the page cache is dropped before one run
# of each tool; otherwise the cold figures are skipped, saying so.
#
# Usage: bench/create.sh            (from the repository root)
# Environment: BENCH_DIR (default /tmp/sower-bench) holds the data file,
# which is reused when present; RUNS (default 3).
set -euo pipefail

cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-/tmp/sower-bench}
RUNS=${RUNS:-3}
SIZE=$((2 * 1024 * 1024 * 1024))
PIECE=$((2 * 1024 * 1024))
DATA="$BENCH_DIR/data-2GiB.bin"
OUT="$BENCH_DIR/out"
PYTHON=/usr/bin/python3
mkdir -p "$BENCH_DIR" "$OUT"

if [[ ! -f "$DATA" || $(stat -c %s "$DATA") -ne $SIZE ]]; then
	echo "creating $DATA (2 GiB of random data)..." >&2
	head -c "$SIZE" /dev/urandom >"$DATA.tmp"
	mv "$DATA.tmp" "$DATA"
fi

echo "building sower..." >&2
go build -o "$BENCH_DIR/sower" ./cmd/sower

have_mktorrent=0
command -v mktorrent >/dev/null && have_mktorrent=1
have_lt=0
"$PYTHON" -c 'import libtorrent' 2>/dev/null && have_lt=1

LT_SCRIPT='
import sys, libtorrent as lt
path, piece, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
fs = lt.file_storage()
lt.add_files(fs, path)
ct = lt.create_torrent(fs, piece, flags=lt.create_torrent.v1_only)
lt.set_piece_hashes(ct, sys.argv[4])
open(out, "wb").write(lt.bencode(ct.generate()))
'

# run_tool NAME: one run of a tool, writing $OUT/NAME.torrent; prints
# "seconds peak_rss_kib".
run_tool() {
	local name=$1 t0 t1 rss
	rm -f "$OUT/$name.torrent"
	local cmd
	case $name in
	sower) cmd=("$BENCH_DIR/sower" create -q --no-date --piece-length "$PIECE" -o "$OUT/sower.torrent" "$DATA") ;;
	mktorrent) cmd=(mktorrent -t 2 -d -l 21 -o "$OUT/mktorrent.torrent" "$DATA") ;;
	libtorrent) cmd=("$PYTHON" -c "$LT_SCRIPT" "$DATA" "$PIECE" "$OUT/libtorrent.torrent" "$BENCH_DIR") ;;
	esac
	t0=$(date +%s%N)
	if [[ -x /usr/bin/time ]]; then
		/usr/bin/time -f %M -o "$OUT/$name.rss" "${cmd[@]}" >/dev/null
		rss=$(tail -n1 "$OUT/$name.rss")
	else
		"${cmd[@]}" >/dev/null
		rss=NA
	fi
	t1=$(date +%s%N)
	echo "$(((t1 - t0) / 1000000)) $rss"
}

tools=(sower)
((have_mktorrent)) && tools+=(mktorrent) || echo "mktorrent not installed: skipped" >&2
((have_lt)) && tools+=(libtorrent) || echo "python3-libtorrent not installed: skipped" >&2

declare -A warm_ms warm_rss cold_ms
for tool in "${tools[@]}"; do
	run_tool "$tool" >/dev/null # warm the cache and the program
	best=
	for ((i = 0; i < RUNS; i++)); do
		read -r ms rss < <(run_tool "$tool")
		if [[ -z $best || $ms -lt $best ]]; then best=$ms; warm_rss[$tool]=$rss; fi
	done
	warm_ms[$tool]=$best
done

cold=0
if [[ $(id -u) -eq 0 ]] && sync && echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then
	cold=1
	for tool in "${tools[@]}"; do
		sync
		echo 3 >/proc/sys/vm/drop_caches
		read -r ms _ < <(run_tool "$tool")
		cold_ms[$tool]=$ms
	done
else
	echo "not root (or /proc/sys/vm/drop_caches not writable): cold-cache runs skipped" >&2
fi

gbps() { awk -v b="$SIZE" -v ms="$1" 'BEGIN { printf "%.2f", b / (ms / 1000) / 1e9 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "data: $DATA ($SIZE bytes), piece length $PIECE, $(nproc) CPUs, best of $RUNS warm runs"
printf '%-11s %9s %7s %16s %12s' tool warm_s GB/s "time/sower" peak_RSS
((cold)) && printf ' %9s %7s' cold_s GB/s
printf '\n'
for tool in "${tools[@]}"; do
	ms=${warm_ms[$tool]}
	rss=${warm_rss[$tool]}
	[[ $rss != NA ]] && rss="$((rss / 1024)) MiB"
	printf '%-11s %9.3f %7s %16s %12s' "$tool" "$(awk -v m="$ms" 'BEGIN{print m/1000}')" "$(gbps "$ms")" \
		"$(ratio "$ms" "${warm_ms[sower]}")x" "$rss"
	if ((cold)); then
		printf ' %9.3f %7s' "$(awk -v m="${cold_ms[$tool]}" 'BEGIN{print m/1000}')" "$(gbps "${cold_ms[$tool]}")"
	fi
	printf '\n'
done

# All three hash the same data with the same piece length and no date, so
# their info-hashes must agree.
echo "info-hashes:"
for tool in "${tools[@]}"; do
	printf '  %-11s %s\n' "$tool" "$("$BENCH_DIR/sower" info --json "$OUT/$tool.torrent" | sed -n 's/.*"info_hash": "\([0-9a-f]*\)".*/\1/p')"
done
