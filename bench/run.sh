#!/bin/sh
# Runs each benchmark binary given as an argument, shows its output and saves
# everything to bench/results.txt (overwritten; '#' lines say when and where).
# Usage: sh bench/run.sh BUILD_DIR bin...   (BENCH_ARGS, e.g. --quick, is passed
# to every binary). Exit status 1 if any binary fails.
build=$1; shift
out="$(cd "$(dirname "$0")" && pwd)/results.txt"
tmp="$out.tmp.$$"
{
    echo "# $(date -u '+%Y-%m-%d %H:%M UTC') on $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(nproc) cpus, build $build"
} >"$tmp"
status=0
for bin in "$@"; do
    echo "# $(basename "$bin") ${BENCH_ARGS:-}" >>"$tmp"
    # Output is shown live; the exit status travels through a file past tee.
    # shellcheck disable=SC2086
    { "$bin" ${BENCH_ARGS:-}; echo $? >"$tmp.rc"; } | tee -a "$tmp"
    if [ "$(cat "$tmp.rc")" != 0 ]; then
        echo "# $(basename "$bin") failed (exit $(cat "$tmp.rc"))" | tee -a "$tmp"
        status=1
    fi
    rm -f "$tmp.rc"
done
mv "$tmp" "$out"
echo "saved to $out"
exit $status
