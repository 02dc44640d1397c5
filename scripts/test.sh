#!/usr/bin/env bash
# Sower's test command: installs what the tests need, then runs gofmt and
# go vet, the whole test suite under the race detector, and every fuzz
# target for a short while. Exits non-zero if anything failed; a summary
# comes last.
#
# Environment:
#   FUZZTIME      time per fuzz target, as go test -fuzztime takes it (default
#                 15s; when unset, all targets together get about FUZZ_BUDGET
#                 seconds, building included, but each at least 5 s)
#   FUZZ_BUDGET   seconds for all fuzz targets when FUZZTIME is unset (420)
#   SKIP_INSTALL  set to 1 to install nothing; tests that need a missing
#                 program are then skipped instead of failing
#
# It needs only this repository, Go (on PATH or in /usr/local/go) and, to
# install the interop programs, apt-get (as root or through sudo).
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

# Debian packages the interop tests drive (see internal/testpeers).
REQUIRED_PKGS=(opentracker transmission-cli transmission-daemon aria2 python3-libtorrent mktorrent nginx nftables iputils-ping redis-server redis-tools)
OPTIONAL_PKGS=(qbittorrent-nox chromium)

DEFAULT_FUZZTIME=15
MIN_FUZZ_SECONDS=5
FUZZ_BUDGET=${FUZZ_BUDGET:-420}

declare -a SUMMARY=()
FAILED=0

log() { printf '\n==> %s\n' "$*"; }

# record NAME STATUS SECONDS: one line of the final summary.
record() {
	SUMMARY+=("$(printf '%-6s %4ss  %s' "$2" "$3" "$1")")
	if [[ $2 == FAIL ]]; then FAILED=1; fi
}

# step NAME CMD...: runs CMD with its output shown, and records the result.
step() {
	local name=$1 start rc
	shift
	log "$name"
	start=$SECONDS
	"$@"
	rc=$?
	if ((rc == 0)); then
		record "$name" ok $((SECONDS - start))
	else
		record "$name" FAIL $((SECONDS - start))
	fi
	return $rc
}

installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# as_root CMD...: runs CMD as root, through sudo when needed.
as_root() {
	if ((EUID == 0)); then
		"$@"
	elif command -v sudo >/dev/null; then
		sudo "$@"
	else
		echo "need root to run: $* (no sudo); set SKIP_INSTALL=1 to test without installing" >&2
		return 1
	fi
}

apt_install() {
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}

install_packages() {
	if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
		echo "no apt-get here: install ${REQUIRED_PKGS[*]} yourself, or set SKIP_INSTALL=1" >&2
		return 1
	fi
	local missing=() optional=() p
	for p in "${REQUIRED_PKGS[@]}"; do installed "$p" || missing+=("$p"); done
	for p in "${OPTIONAL_PKGS[@]}"; do installed "$p" || optional+=("$p"); done
	if ((${#missing[@]} + ${#optional[@]} == 0)); then
		echo "all packages present: ${REQUIRED_PKGS[*]} ${OPTIONAL_PKGS[*]}"
		return 0
	fi
	echo "missing: ${missing[*]} ${optional[*]}"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update || return 1
	if ((${#missing[@]} > 0)); then
		apt_install "${missing[@]}" || return 1
	fi
	if ((${#optional[@]} > 0)); then
		apt_install "${optional[@]}" || echo "warning: could not install optional ${optional[*]}" >&2
	fi
	return 0
}

check_gofmt() {
	local files unformatted
	files=$(go list -e -f '{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}
{{end}}{{range .TestGoFiles}}{{$d}}/{{.}}
{{end}}{{range .XTestGoFiles}}{{$d}}/{{.}}
{{end}}' ./...) || return 1
	unformatted=$(xargs -r gofmt -l <<<"$files") || return 1
	if [[ -n $unformatted ]]; then
		echo "not gofmt-ed (run gofmt -w):"
		echo "$unformatted"
		return 1
	fi
	echo "all $(grep -c . <<<"$files") Go files gofmt-ed"
}

# fuzz_targets prints "package target" for every fuzz target in the module.
# Only packages whose tests mention "func Fuzz" are asked, as listing means
# building the test binary.
fuzz_targets() {
	local pkg dir list
	go list -e -f '{{.ImportPath}} {{.Dir}}' ./... | while read -r pkg dir; do
		grep -qs '^func Fuzz' "$dir"/*_test.go || continue
		if ! list=$(go test -list '^Fuzz' "$pkg" 2>&1); then
			printf 'cannot list fuzz targets of %s:\n%s\n' "$pkg" "$list" >&2
			echo "$pkg LIST-FAILED"
			continue
		fi
		grep '^Fuzz' <<<"$list" | sed "s|^|$pkg |"
	done
}

# fuzz_once PKG TARGET FUZZTIME LIMIT OUT: one bounded fuzzing run, output to OUT.
fuzz_once() {
	timeout --kill-after=10 "$4" \
		go test -run='^$' -fuzz="^${2}\$" -fuzztime="$3" -timeout="${4}s" "$1" >"$5" 2>&1
}

run_fuzz() {
	local targets fuzztime secs count pkg name out rc start fuzz_start done_count=0
	fuzz_start=$SECONDS
	targets=$(fuzz_targets)
	count=$(grep -c . <<<"$targets")
	if ((count == 0)); then
		echo "no fuzz targets found"
		record "fuzz: no targets" ok 0
		return 0
	fi
	if [[ -n ${FUZZTIME:-} ]]; then
		fuzztime=$FUZZTIME
	else
		echo "$count fuzz targets sharing ${FUZZ_BUDGET}s (at most ${DEFAULT_FUZZTIME}s, at least ${MIN_FUZZ_SECONDS}s each)"
	fi
	local limit

	out=$(mktemp)
	while read -r pkg name; do
		[[ -n $pkg ]] || continue
		if [[ $name == LIST-FAILED ]]; then
			record "fuzz $pkg (listing)" FAIL 0
			continue
		fi
		if [[ -z ${FUZZTIME:-} ]]; then
			# What is left of the budget is shared by the targets left, so
			# the time spent building each fuzzing binary counts too.
			secs=$(((FUZZ_BUDGET - (SECONDS - fuzz_start)) / (count - done_count)))
			((secs > DEFAULT_FUZZTIME)) && secs=$DEFAULT_FUZZTIME
			((secs < MIN_FUZZ_SECONDS)) && secs=$MIN_FUZZ_SECONDS
			fuzztime=${secs}s
		fi
		done_count=$((done_count + 1))
		# A hard stop per target, whatever FUZZTIME says (it may be a count).
		limit=300
		if [[ $fuzztime =~ ^([0-9]+)s?$ ]]; then limit=$((BASH_REMATCH[1] + 180)); fi
		log "fuzz $pkg $name ($fuzztime)"
		start=$SECONDS
		fuzz_once "$pkg" "$name" "$fuzztime" "$limit" "$out"
		rc=$?
		# The fuzzing engine itself sometimes fails with no input to show:
		# it loses a worker on a loaded machine ("fuzzing process hung or
		# terminated unexpectedly"), or its coordinator reports its own
		# -fuzztime deadline as a failure (a bare "context deadline
		# exceeded" as the time runs out: go.dev/issue/75804, fixed in Go
		# 1.27). That says nothing about our code, so such a run gets one
		# retry; a failure with an input never does.
		if ((rc != 0)) && ! grep -q 'Failing input written' "$out" &&
			grep -q 'fuzzing process hung or terminated unexpectedly\|communicating with fuzzing process\|^[[:space:]]*context deadline exceeded$' "$out"; then
			cat "$out"
			echo "the fuzzing engine failed without a failing input; retrying $name once"
			fuzz_once "$pkg" "$name" "$fuzztime" "$limit" "$out"
			rc=$?
		fi
		if ((rc == 0)); then
			tail -n 2 "$out"
			record "fuzz $name ($pkg)" ok $((SECONDS - start))
		else
			cat "$out"
			echo "failing inputs, if any, were saved under the package's testdata/fuzz/$name/"
			record "fuzz $name ($pkg)" FAIL $((SECONDS - start))
		fi
	done <<<"$targets"
	rm -f "$out"
}

main() {
	local total_start=$SECONDS

	if ! command -v go >/dev/null; then
		export PATH=/usr/local/go/bin:$PATH
	fi
	if ! command -v go >/dev/null; then
		echo "go not found on PATH nor in /usr/local/go/bin" >&2
		exit 1
	fi
	go version

	if [[ ${SKIP_INSTALL:-} == 1 ]]; then
		log "installing nothing (SKIP_INSTALL=1): tests needing a missing program will skip"
		record "install packages (skipped)" ok 0
	elif step "install packages" install_packages; then
		# Everything is installed, so no interop test may pass by skipping.
		export TESTPEERS_REQUIRE=1
	fi
	step "go mod download" go mod download

	step "gofmt" check_gofmt
	step "go vet" go vet ./...
	step "go test -race" go test -race -timeout 20m ./...
	run_fuzz

	log "summary ($((SECONDS - total_start))s)"
	printf '%s\n' "${SUMMARY[@]}"
	if ((FAILED)); then
		echo "FAILED"
		exit 1
	fi
	echo "PASSED"
}

main "$@"
