#!/usr/bin/env bash
# webseed.sh: web seed download benchmark over loopback (issue 7). One
# nginx on 127.0.0.1 serves one file of random data; in one run, each
# client downloads it from there alone, with no peers:
#
#   sower          `sower get` of a .torrent whose url-list is the file's URL
#   aria2-http     `aria2c URL`: the plain file over HTTP, no torrent
#   aria2-torrent  `aria2c` with the same .torrent (its url-list web seed)
#   libtorrent     python3-libtorrent with the same .torrent
#
# Each client runs REPEATS times in turn (sower, aria2-http, aria2-torrent,
# libtorrent, then again), into a fresh folder on the same disk, with a
# warm page cache (the file was just written), after a `sync` so that the
# previous run's writes do not slow it down. Printed per client, median
# over the repeats: MB/s (10^6 bytes / s of wall time from start to exit
# after a verified download; aria2-http has no hashes, so only the final
# cmp checks it); "disk MB/s", the same up to the end of a `sync` run right
# after the exit (sower syncs its files before it exits, the others do
# not, so this column compares like with like); CPU seconds (user+sys)
# and peak RSS of the client.
# sower's completion line must say that every byte came from the web seed.
#
# Environment: SIZE (bytes, default 1 GiB), REPEATS (default 3),
# PIECE_LENGTH (as `sower create --piece-length` takes it, default 1MiB),
# CLIENTS (space-separated, default all four), TIMEOUT (seconds per
# download, default 300; a download that fails is reported), NGINX
# (default /usr/sbin/nginx), WORK (scratch folder, default a fresh one under
# /tmp, removed at the end).
#
#   bench/webseed.sh                                  # full run
#   SIZE=268435456 REPEATS=1 bench/webseed.sh         # quick run
set -euo pipefail

SIZE=${SIZE:-1073741824}
REPEATS=${REPEATS:-3}
PIECE_LENGTH=${PIECE_LENGTH:-1MiB}
CLIENTS=${CLIENTS:-"sower aria2-http aria2-torrent libtorrent"}
TIMEOUT=${TIMEOUT:-300}
NGINX=${NGINX:-/usr/sbin/nginx}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LT_GET=$ROOT/bench/webseed/lt_get.py

for p in aria2c "$NGINX" /usr/bin/python3 /usr/bin/time go cmp ss curl timeout; do
	command -v "$p" >/dev/null || { echo "webseed.sh: $p not found (scripts/test.sh installs the programs)" >&2; exit 1; }
done
/usr/bin/python3 -c 'import libtorrent' 2>/dev/null ||
	{ echo "webseed.sh: python3-libtorrent not installed (scripts/test.sh installs it)" >&2; exit 1; }

WORK=${WORK:-$(mktemp -d /tmp/sower-webseed.XXXXXX)}
mkdir -p "$WORK"
NGINX_PID=
cleanup() {
	if [ -n "$NGINX_PID" ]; then
		kill "$NGINX_PID" 2>/dev/null || true
		wait "$NGINX_PID" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT

echo "building sower" >&2
(cd "$ROOT" && go build -o "$WORK/sower" ./cmd/sower)
SOWER=$WORK/sower

echo "making $SIZE bytes of data" >&2
mkdir -p "$WORK/www"
head -c "$SIZE" /dev/urandom >"$WORK/www/bench.bin"

# freeport prints a TCP port nobody listens on.
freeport() {
	local p
	while :; do
		p=$((20000 + RANDOM % 40000))
		ss -ltnH "sport = :$p" | grep -q . || { echo "$p"; return; }
	done
}

# nginx as a web seed: one process in the foreground, as this user, with
# everything under $WORK/nginx; sendfile and keep-alive as distributions
# ship it, no access log (it would cost the server a write per request).
PORT=$(freeport)
NG=$WORK/nginx
mkdir -p "$NG"
cat >"$NG/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $NG/nginx.pid;
error_log $NG/error.log warn;
events { worker_connections 256; }
http {
	access_log off;
	sendfile on;
	tcp_nopush on;
	keepalive_requests 100000;
	client_body_temp_path $NG/client_body;
	proxy_temp_path $NG/proxy;
	fastcgi_temp_path $NG/fastcgi;
	uwsgi_temp_path $NG/uwsgi;
	scgi_temp_path $NG/scgi;
	types { application/octet-stream bin; }
	server {
		listen 127.0.0.1:$PORT;
		root $WORK/www;
	}
}
EOF
"$NGINX" -p "$NG/" -c "$NG/nginx.conf" -e "$NG/error.log" &
NGINX_PID=$!
URL=http://127.0.0.1:$PORT/bench.bin
for _ in $(seq 100); do
	curl -fsS -o /dev/null -r 0-0 "$URL" 2>/dev/null && break
	kill -0 "$NGINX_PID" 2>/dev/null || { echo "webseed.sh: nginx exited:" >&2; cat "$NG/error.log" >&2; exit 1; }
	sleep 0.1
done
curl -fsS -o /dev/null -r 0-0 "$URL" || { echo "webseed.sh: nginx does not answer at $URL" >&2; exit 1; }

echo "making the torrent (piece length $PIECE_LENGTH)" >&2
"$SOWER" create --quiet --no-date --piece-length "$PIECE_LENGTH" --webseed "$URL" \
	-o "$WORK/bench.torrent" "$WORK/www/bench.bin" >&2

ARIA_COMMON=(--no-conf=true --disable-ipv6=true --file-allocation=none --auto-file-renaming=false
	--allow-overwrite=true --show-console-readout=false --summary-interval=0 --console-log-level=warn)

# clientcmd CLIENT OUT: the client's command line, in CMD.
clientcmd() {
	case $1 in
	sower) CMD=("$SOWER" get --no-dht --port 0 --quiet -o "$2" "$WORK/bench.torrent") ;;
	aria2-http) CMD=(aria2c "${ARIA_COMMON[@]}" --dir="$2" "$URL") ;;
	aria2-torrent) CMD=(aria2c "${ARIA_COMMON[@]}" --interface=127.0.0.1 --enable-dht=false --enable-dht6=false
		--bt-enable-lpd=false --enable-peer-exchange=false --listen-port="$(freeport)" --seed-time=0
		--dir="$2" "$WORK/bench.torrent") ;;
	libtorrent) CMD=(/usr/bin/python3 "$LT_GET" "$WORK/bench.torrent" "$2" "$TIMEOUT") ;;
	*) echo "webseed.sh: unknown client $1" >&2; exit 1 ;;
	esac
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

RESULTS=$WORK/results
: >"$RESULTS"
for r in $(seq "$REPEATS"); do
	for c in $CLIENTS; do
		out=$WORK/out
		rm -rf "$out"
		mkdir -p "$out"
		clientcmd "$c" "$out"
		ok=1
		sync
		t0=$(date +%s.%N)
		if ! /usr/bin/time -f "%U %S %M" -o "$WORK/time" timeout "$TIMEOUT" "${CMD[@]}" >"$WORK/client.log" 2>&1; then
			echo "webseed.sh: $c: failed or timed out (${TIMEOUT}s); its log:" >&2
			tail -20 "$WORK/client.log" >&2
			ok=0
		fi
		t1=$(date +%s.%N)
		sync
		t2=$(date +%s.%N)
		if [ "$ok" = 1 ] && ! cmp -s "$WORK/www/bench.bin" "$out/bench.bin"; then
			echo "webseed.sh: $c: downloaded data differs" >&2
			ok=0
		fi
		if [ "$ok" = 1 ] && [ "$c" = sower ]; then
			# "NAME: complete in T: downloaded N bytes (M from web seeds, ..."
			line=$(grep -E '^bench\.bin: complete in ' "$WORK/client.log" || true)
			web=$(sed -nE 's/.*\(([0-9]+) from web seeds.*/\1/p' <<<"$line")
			if [ "$web" != "$SIZE" ]; then
				echo "webseed.sh: sower: completion line says ${web:-?} bytes from web seeds, want $SIZE: $line" >&2
				ok=0
			fi
		fi
		if [ "$ok" = 0 ]; then
			echo "$c failed" >>"$RESULTS"
			continue
		fi
		read -r u s rss <"$WORK/time"
		awk -v c="$c" -v size="$SIZE" -v t0="$t0" -v t1="$t1" -v t2="$t2" -v u="$u" -v s="$s" -v rss="$rss" 'BEGIN {
			printf "%s %.1f %.1f %.2f %.0f\n", c, size / (t1 - t0) / 1e6, size / (t2 - t0) / 1e6, u + s, rss / 1024
		}' | tee -a "$RESULTS" >&2
	done
done
rm -rf "$WORK/out"

printf '\n%d MiB single file from one loopback nginx web seed (piece length %s), %d run(s) per client, medians\n' \
	$((SIZE >> 20)) "$PIECE_LENGTH" "$REPEATS"
printf '%-14s %8s %10s %8s %8s\n' client MB/s "disk MB/s" "CPU s" "RSS MiB"
for c in $CLIENTS; do
	col() { awk -v p="$c" -v k="$1" '$1 == p && $2 != "failed" { print $k }' "$RESULTS" | median; }
	fails=$(awk -v p="$c" '$1 == p && $2 == "failed"' "$RESULTS" | wc -l)
	[ "$fails" = 0 ] || echo "$c: $fails of $REPEATS runs failed (see above)"
	printf '%-14s %8s %10s %8s %8s\n' "$c" "$(col 2)" "$(col 3)" "$(col 4)" "$(col 5)"
done
