#!/bin/sh
# Data-parallel training speed-up on this machine (make MPI=1 bench-mpi):
# bench_mpi_step at 1 and 2 ranks, 1 OpenMP thread per rank, bound to cores;
# prints both lines and the measured speed-up, then the step parts used by the
# scaling model of docs/distributed.md (--sweep, one process).
# Usage: sh bench/bench_mpi.sh BUILD_DIR [--quick]   (MPIRUN overrides the launcher)
build=$1; shift
bin="$build/bench/mpi/bench_mpi_step"
MPIRUN=${MPIRUN:-mpirun --allow-run-as-root --oversubscribe}
echo "# $(date -u '+%Y-%m-%d %H:%M UTC') on $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(nproc --all) cpus, load $(cut -d' ' -f1-3 /proc/loadavg)"
export OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
# one machine: start the ranks directly, no ssh/rsh (absent from minimal containers)
export OMPI_MCA_plm="${OMPI_MCA_plm:-isolated}"
one=$($MPIRUN -np 1 --bind-to core "$bin" "$@") || exit 1
echo "$one"
two=$($MPIRUN -np 2 --bind-to core "$bin" "$@") || exit 1
echo "$two"
rate() { echo "$1" | sed -n 's/.*steps_per_s=\([0-9.]*\).*/\1/p'; }
awk -v a="$(rate "$one")" -v b="$(rate "$two")" 'BEGIN { printf "mpi_speedup ranks=2 threads=1 speedup=%.2f efficiency=%.2f\n", b / a, b / a / 2 }'
$MPIRUN -np 1 --bind-to core "$bin" "$@" --sweep || exit 1
