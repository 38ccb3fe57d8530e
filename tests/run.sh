#!/bin/sh
# Runs every CMocka test binary, shows their output, and ends with one line
# "tests: N passed, N failed, N skipped" (exit 1 if any test failed or a binary crashed).
# HG_VALGRIND=1 runs each binary under valgrind memcheck (leaks are failures).
build=$1; shift
passed=0; failed=0; skipped=0; crashed=""
export HG_BUILD_DIR="$build"
export HG_SHARED_DIR="${HG_SHARED_DIR:-$(cd "$(dirname "$0")/.." && pwd)/../shared}"
for bin in "$@"; do
    out="$build/tests/$(basename "$bin").log"
    if [ "${HG_VALGRIND:-0}" = 1 ]; then
        valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect \
            --suppressions=tests/valgrind.supp "$bin" >"$out" 2>&1
    else
        "$bin" >"$out" 2>&1
    fi
    rc=$?
    cat "$out"
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$out" | awk '{s+=$1} END {print s+0}')
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$out" | awk '{s+=$1} END {print s+0}')
    s=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$out" | awk '{s+=$1} END {print s+0}')
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
    if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then crashed="$crashed $(basename "$bin")(exit $rc)"; fi
done
if [ -n "$crashed" ]; then
    echo "crashed or failed outside a test:$crashed"
    failed=$((failed + 1))
fi
echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
