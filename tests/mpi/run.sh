#!/bin/sh
# Runs the MPI tests (make MPI=1 test-mpi): every tests/mpi/test_mpi_* binary
# under `mpirun -np 1` and `-np 2` on this machine, 1 OpenMP thread per rank,
# then tests/mpi/test_mpi_cli.sh; shows their output and ends with one line
# "mpi tests: N passed, N failed" (exit 1 if any failed).
# Usage: sh tests/mpi/run.sh BUILD_DIR bin...   (MPIRUN overrides the launcher)
build=$1; shift
MPIRUN=${MPIRUN:-mpirun --allow-run-as-root --oversubscribe}
export MPIRUN OMP_NUM_THREADS=1
# root in CI containers; no cross-memory attach (ptrace) in many containers
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
# one machine: start the ranks directly, no ssh/rsh (absent from minimal containers)
export OMPI_MCA_plm="${OMPI_MCA_plm:-isolated}"
passed=0; failed=0; failures=""
for bin in "$@"; do
    for np in 1 2; do
        out="$build/tests/mpi/$(basename "$bin").np$np.log"
        echo "== mpirun -np $np $bin"
        # a hung collective would otherwise block CI forever
        timeout 300 $MPIRUN -np $np "$bin" >"$out" 2>&1
        rc=$?
        cat "$out"
        if [ $rc -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); failures="$failures $(basename "$bin")@np$np(exit $rc)"; fi
    done
done
echo "== tests/mpi/test_mpi_cli.sh"
if timeout 600 sh tests/mpi/test_mpi_cli.sh "$build"; then passed=$((passed + 1)); else failed=$((failed + 1)); failures="$failures test_mpi_cli.sh"; fi
[ -n "$failures" ] && echo "failed:$failures"
echo "mpi tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
