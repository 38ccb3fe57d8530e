#!/bin/sh
# Runs each benchmark binary given as an argument, shows its output and saves
# everything to bench/results.txt (overwritten; '#' lines say when and where,
# the machine's load average before each binary and at the end, and how long
# each binary took), then turns that file into bench/RESULTS.md and
# bench/results.json with bench/make_results.sh.
# Usage: sh bench/run.sh BUILD_DIR bin...   (BENCH_ARGS, e.g. --quick, is passed
# to every binary; BENCH_OUT=DIR writes results.txt, RESULTS.md, results.json
# and bench_scaling's scaling.md / scaling.png into DIR instead of bench/, e.g.
# to try a change without replacing the committed results). Exit status 1 if
# any binary fails.
build=$1; shift
here="$(cd "$(dirname "$0")" && pwd)"
out_dir=${BENCH_OUT:-$here}
mkdir -p "$out_dir" || exit 1
out="$out_dir/results.txt"
tmp="$out.tmp.$$"
load() { cut -d' ' -f1-3 /proc/loadavg; }
{
    echo "# $(date -u '+%Y-%m-%d %H:%M UTC') on $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(nproc) cpus, build $build"
    echo "# args ${BENCH_ARGS:-none}"
    echo "# uptime at the start: $(uptime)"
} >"$tmp"
status=0
start=$(date +%s)
for bin in "$@"; do
    name=$(basename "$bin")
    echo "# load $(load) before $name" >>"$tmp"
    echo "# $name ${BENCH_ARGS:-}" >>"$tmp"
    t0=$(date +%s)
    # bench_scaling writes its table and plot beside the results
    scaling_out=""
    if [ "$name" = bench_scaling ] && [ -n "${BENCH_OUT:-}" ]; then scaling_out=$out_dir; fi
    # Output is shown live; the exit status travels through a file past tee.
    # shellcheck disable=SC2086
    { "$bin" ${BENCH_ARGS:-} ${scaling_out:+--out "$scaling_out"}; echo $? >"$tmp.rc"; } | tee -a "$tmp"
    if [ "$(cat "$tmp.rc")" != 0 ]; then
        echo "# $name failed (exit $(cat "$tmp.rc"))" | tee -a "$tmp"
        status=1
    fi
    echo "# $name took $(($(date +%s) - t0)) s" >>"$tmp"
    rm -f "$tmp.rc"
done
echo "# load $(load) at the end" >>"$tmp"
echo "# uptime at the end: $(uptime)" >>"$tmp"
echo "# total $(($(date +%s) - start)) s" >>"$tmp"
mv "$tmp" "$out"
echo "saved to $out"
if [ -f "$here/make_results.sh" ]; then
    sh "$here/make_results.sh" "$out" || status=1
fi
exit $status
