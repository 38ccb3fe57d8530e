#!/bin/sh
# The hgad commands under mpirun on this machine (MPI=1 build), against the
# same commands in one process:
#   1. train: the sharded feature cache is byte-identical to one process's;
#   2. eval: 2 ranks x 1 thread give the same results.json / results.md /
#      roc.png bytes as 1 process x 2 threads;
#   3. a batch that does not split over the ranks fails on every rank, with
#      one message, and a clean exit status;
#   4. an unreadable image in one rank's share stops both with its message;
#   5. a rank killed during training ends the job, the other rank says why,
#      the last checkpoint is intact and `--resume` finishes the run.
# Usage: sh tests/mpi/test_mpi_cli.sh BUILD_DIR   (MPIRUN overrides the launcher)
# Prints "ok N - ..." / "not ok N - ..." lines; exit status 1 on any failure.
set -u
build=$1
hgad=$(cd "$build" && pwd)/hgad
MPIRUN=${MPIRUN:-mpirun --allow-run-as-root --oversubscribe}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# one machine: start the ranks directly, no ssh/rsh (absent from minimal containers)
export OMPI_MCA_plm="${OMPI_MCA_plm:-isolated}"
dir=$(mktemp -d /tmp/hgad_mpi_cli.XXXXXX)
trap 'rm -rf "$dir"' EXIT
cd "$dir" || exit 1
n=0 failures=0
check() { # check DESCRIPTION CONDITION...
    n=$((n + 1)); what=$1; shift
    if "$@"; then echo "ok $n - $what"; else echo "not ok $n - $what"; failures=$((failures + 1)); fi
}

"$hgad" synth --output data --categories weave,disc --size 64 --train 6 --test-good 4 --test-defective 5 \
    --seed 1 >/dev/null || { echo "not ok - synth"; exit 1; }
train="train --img-size 64 --levels 2 --coupling-blocks 2 --cond-dim 16 --sub-epochs 1 --quiet"

# 1. training, and the feature cache
"$hgad" $train --root data --epochs 2 --batch 4 --threads 1 --output single 2>single.err
check "single-process train" test $? = 0
$MPIRUN -np 2 "$hgad" $train --root data --epochs 2 --batch 4 --threads 1 --output mpi >mpi.out 2>mpi.err
check "mpirun -np 2 train" test $? = 0
check "checkpoint and model written" test -f mpi/checkpoint.safetensors -a -f mpi/model.safetensors
check "sharded feature cache equals the single-process one" cmp -s single/features.cache mpi/features.cache
check "no temporary files left" test -z "$(ls mpi | grep tmp)"

# 2. evaluation
"$hgad" eval --checkpoint mpi/model.safetensors --output ev1 --threads 2 --batch 4 --heatmaps 2 --quiet >/dev/null
check "single-process eval" test $? = 0
$MPIRUN -np 2 "$hgad" eval --checkpoint mpi/model.safetensors --output ev2 --threads 1 --batch 4 --heatmaps 2 \
    --quiet >/dev/null 2>ev2.err
check "mpirun -np 2 eval" test $? = 0
for f in results.json results.md roc.png; do
    check "sharded eval $f equals the single-process one" cmp -s ev1/$f ev2/$f
done

# 3. a batch of 3 images cannot split over 2 ranks: both say so, no abort
$MPIRUN -np 2 "$hgad" $train --root data --epochs 1 --batch 3 --threads 1 --output odd >/dev/null 2>odd.err
check "batch 3 on 2 ranks fails" test $? != 0
check "both ranks print the reason" test "$(grep -c 'does not split evenly over 2 ranks' odd.err)" = 2
check "no MPI_Abort for an agreed failure" test "$(grep -c MPI_ABORT odd.err)" = 0

# 4. an unreadable image in rank 1's share of the features: both ranks stop with its message
cp -r data bad && echo garbage >bad/weave/train/good/005.png
$MPIRUN -np 2 "$hgad" $train --root bad --epochs 1 --batch 4 --threads 1 --output badrun >/dev/null 2>bad.err
check "an unreadable image fails the job" test $? != 0
check "both ranks name rank 1 and the image" \
    test "$(grep -c 'rank 1 of 2: image: bad/weave/train/good/005.png' bad.err)" = 2
check "no cache left behind" test ! -e badrun/features.cache

# 5. kill rank 1 once the first checkpoint exists
$MPIRUN -np 2 "$hgad" $train --root data --epochs 60 --batch 4 --threads 1 --output killed >/dev/null 2>killed.err &
launcher=$!
i=0
while [ ! -f killed/checkpoint.safetensors ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
victim=""
for p in $(pgrep -P $launcher); do
    tr '\0' '\n' </proc/$p/environ 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=1 && victim=$p
done
check "found rank 1 of the running job" test -n "$victim"
[ -n "$victim" ] && kill -KILL "$victim"
wait $launcher
check "the job ends with a failure" test $? != 0
check "rank 0 says it was stopped" grep -q "rank 0 of 2: stopped by the MPI launcher" killed.err
check "the launcher names the killed rank" grep -q "rank 1" killed.err
loads() { "$hgad" weights-info "$1" >/dev/null 2>&1; }
check "the last checkpoint loads" loads killed/checkpoint.safetensors
$MPIRUN -np 2 "$hgad" $train --root data --epochs 60 --batch 4 --threads 1 --output killed \
    --resume killed/checkpoint.safetensors >/dev/null 2>resume.err
check "training resumes from it and finishes" test $? = 0 -a -f killed/model.safetensors

if [ $failures != 0 ] || [ "${VERBOSE:-0}" = 1 ]; then
    for f in *.err; do echo "== $f"; cat "$f"; done
fi
echo "mpi cli: $((n - failures)) passed, $failures failed"
[ $failures = 0 ]
