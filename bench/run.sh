#!/usr/bin/env bash
# `make bench`: trustgate's benchmark report, measured on this machine in one run.
#
#   1. Go micro-benchmarks of the hot paths (go test -bench in the packages that have them), each
#      with a CPU profile summarised by `go tool pprof -top`;
#   2. bench/cmd/report: starts the real peers on loopback (distribution registry as upstream,
#      notary-server, notary CLI for signing, crane, versitygw) and runs the six scenarios against the
#      upstream directly, trustgate (`trustgate serve`, built with go build) and distribution's
#      registry in proxy mode, side by side.
#
#   3. the scale section: the BenchmarkScale* Go benchmarks of cache/ and proxy/ (resolution at
#      10 … 100,000 tags, memory per tag and per repository, warm rate past the cache size,
#      tags/list paging), rendered with growth columns by bench/cmd/scale into scale.md, which the
#      report includes. SCALE_ONLY=1 runs this part alone (minutes; the rest takes much longer).
#
# Output: bench/results/latest.md (table + machine), latest.json (raw), latest.svg (chart),
# micro.txt, pprof/ and perf-*.data (profiles; not committed).
#
# Knobs (environment): BENCHTIME (micro-benchmarks, default 1s), BENCH_QUIET_WAIT (seconds to wait
# for a quiet machine before each part, default 60; 0 = don't wait), REPORT_FLAGS (extra flags for the
# report, e.g. "-blob-size 268435456 -tag-duration 2s" for a quick run; see go run ./bench/cmd/report -h).
# Speed figures never fail anything; the exit status is non-zero only if a scenario could not run.
set -euo pipefail

cd "$(dirname "$0")/.."
GOBIN_DIR="$(go env GOPATH | cut -d: -f1)/bin"
export PATH="$GOBIN_DIR:$PATH"

out=bench/results
mkdir -p "$out/pprof"
rm -f "$out"/perf-*.data "$out"/pprof/*

for bin in registry notary-server notary crane versitygw; do
	if ! command -v "$bin" >/dev/null; then
		echo "bench: $bin not found; install the peers with: bash scripts/install-deps.sh" >&2
		exit 1
	fi
done

# A benchmark on a busy machine measures the other work. Wait up to BENCH_QUIET_WAIT seconds
# (default 60) for the 1-minute load average to fall below the number of CPUs, then measure
# regardless; the report records the load average at its start and end.
wait_quiet() {
	local limit="${BENCH_QUIET_WAIT:-60}" n waited=0 load
	n="$(nproc)"
	while :; do
		load="$(cut -d' ' -f1 /proc/loadavg)"
		if awk -v l="$load" -v n="$n" 'BEGIN { exit !(l < n) }'; then
			return 0
		fi
		if [ "$waited" -ge "$limit" ]; then
			echo "bench: load average $load is still >= $n CPUs after ${limit}s; measuring anyway" >&2
			return 0
		fi
		if [ "$waited" -eq 0 ]; then
			echo "bench: load average $load >= $n CPUs; waiting up to ${limit}s for a quieter machine" >&2
		fi
		sleep 10
		waited=$((waited + 10))
	done
}

# The scale section. Slow operations (a cold resolution of 100,000 tags takes seconds) run a
# fixed number of times, fast ones for SCALE_BENCHTIME (default 1s).
scale() {
	local raw="$out/scale.txt" t="${SCALE_BENCHTIME:-1s}"
	: >"$raw"
	local runs=(
		"./cache ^BenchmarkScaleResolution\$/././^(cold|newtag)\$ 3x"
		"./cache ^BenchmarkScaleResolution\$/././^(warm|recheck)\$ $t"
		"./cache ^BenchmarkScale(Memory|Repos)\$ 1x"
		"./cache ^BenchmarkScaleWarm\$ $t"
		"./proxy ^BenchmarkScaleWarmHTTP\$ $t"
		"./proxy ^BenchmarkScaleTagsList\$ $t"
	)
	local r pkg pat bt
	for r in "${runs[@]}"; do
		read -r pkg pat bt <<<"$r"
		go test -run '^$' -bench "$pat" -benchmem -benchtime "$bt" -timeout 60m "$pkg" | tee -a "$raw" >&2
	done
	go run ./bench/cmd/scale "$raw" >"$out/scale.md"
}

wait_quiet
echo "== scale" >&2
scale
if [ -n "${SCALE_ONLY:-}" ]; then
	cat "$out/scale.md"
	exit 0
fi

wait_quiet
echo "== micro-benchmarks (BENCHTIME=${BENCHTIME:-1s})" >&2
micro="$out/micro.txt"
: >"$micro"
cpu_tops=()
for pkg in resolver cache proxy proxy/fanout proxy/blobstore; do
	if ! grep -qs '^func Benchmark' "$pkg"/*_test.go; then
		echo "# ./$pkg: no benchmarks" >>"$micro"
		continue
	fi
	name="${pkg//\//-}"
	prof="$out/pprof/$name"
	if ! go test -run '^$' -bench . -skip '^BenchmarkScale' -benchmem -benchtime "${BENCHTIME:-1s}" \
		-cpuprofile "$prof.cpu.pprof" -memprofile "$prof.mem.pprof" -o "$prof.test" "./$pkg" >>"$micro" 2>&1; then
		echo "# ./$pkg: go test -bench failed (output above)" >>"$micro"
		continue
	fi
	top="$prof.cpu.txt"
	{
		echo "pprof CPU, ./$pkg micro-benchmarks (go tool pprof -top -nodecount=15)"
		go tool pprof -top -nodecount=15 "$prof.test" "$prof.cpu.pprof" 2>/dev/null | sed -n '/^Showing\|flat%/,$p'
		echo
		echo "pprof allocations (alloc_space), ./$pkg"
		go tool pprof -top -nodecount=10 -sample_index=alloc_space "$prof.test" "$prof.mem.pprof" 2>/dev/null | sed -n '/flat%/,$p'
	} >"$top"
	cpu_tops+=("$top")
done
cat "$micro" >&2

wait_quiet
echo "== scenarios" >&2
# shellcheck disable=SC2086 # REPORT_FLAGS is a list of flags
exec go run ./bench/cmd/report -out "$out" -micro "$micro" -scale "$out/scale.md" \
	-micro-cpu "$(IFS=,; echo "${cpu_tops[*]:-}")" ${REPORT_FLAGS:-}
