#!/bin/sh
# The model zoo's comparison tables: every entry of configs/zoo (HGAD, CFLOW-AD,
# the HGAD ablations) trained and evaluated by 'hgad zoo' with a CPU preset on
#   1. a 3-category synthetic data set with the built-in filter-bank encoder
#      (no downloads), and
#   2. when ../shared exists, MVTec AD bottle with the shared ImageNet
#      MobileNetV2 (one category: see the note written into the result).
# Writes OUTPUT_DIR/zoo_results.md (docs/zoo_results.md is a copy of one run).
# Usage: tools/zoo_table.sh [BUILD_DIR] [OUTPUT_DIR]
set -eu
build=${1:-build}
out=${2:-$build/zoo}
hgad=$build/hgad
shared=../shared
doc=$out/zoo_results.md
# Other work on the machine makes spinning OpenMP threads slow (docs/architecture.md).
: "${OMP_WAIT_POLICY:=passive}"
export OMP_WAIT_POLICY

# CPU presets: every size of the configs is overridden, the same for every entry.
synthetic_preset="--img-size 128 --msk-size 128 --levels 3 --coupling-blocks 4 --cond-dim 64 --epochs 6 --sub-epochs 2 --batch 8"
bottle_preset="--img-size 256 --msk-size 256 --levels 3 --coupling-blocks 4 --cond-dim 64 --epochs 4 --sub-epochs 2 --batch 8"

mkdir -p "$out"
started=$(date -u '+%Y-%m-%d %H:%M UTC')
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
load=$(cut -d ' ' -f 1-3 /proc/loadavg 2>/dev/null || echo unknown)

echo "== synthetic data set (weave, disc, screw)"
rm -rf "$out/data"
"$hgad" synth --output "$out/data" --categories weave,disc,screw --size 128 --seed 1
# shellcheck disable=SC2086 # the presets are word lists
"$hgad" zoo --root "$out/data" --backbone builtin $synthetic_preset --output "$out/synthetic"

bottle=no
if [ -d "$shared/data/mvtec_ad/bottle" ] && [ -f "$shared/weights/mobilenet_v2_tf_1001.safetensors" ]; then
    echo "== MVTec AD bottle, MobileNetV2"
    # shellcheck disable=SC2086
    "$hgad" zoo --root "$shared/data/mvtec_ad" --categories bottle --backbone mobilenet_v2 \
        --weights "$shared/weights/mobilenet_v2_tf_1001.safetensors" $bottle_preset --output "$out/bottle"
    bottle=yes
fi

# One document: the machine, then each zoo.md with its headings one level down.
{
    echo "# Model zoo results"
    echo
    echo "Written by \`tools/zoo_table.sh $build $out\`, started $started on $(nproc) cores"
    echo "(${cpu:-unknown CPU}), OMP_WAIT_POLICY=$OMP_WAIT_POLICY, load average $load at the start. Each table below"
    echo "records its own command, date and load. Every entry is a configuration of the"
    echo "same modules (\`configs/zoo/*.cfg\`); the CPU preset overrides all sizes alike,"
    echo "so these are small, short runs for comparing entries with each other, not"
    echo "reproductions of the published numbers. Train seconds depend on what else the"
    echo "machine runs meanwhile (see the load averages)."
    echo
    sed 's/^# Model zoo$/## Synthetic data set, built-in encoder/' "$out/synthetic/zoo.md"
    if [ "$bottle" = yes ]; then
        echo
        sed 's/^# Model zoo$/## MVTec AD bottle, MobileNetV2/' "$out/bottle/zoo.md"
        echo
        echo "With one category the unified entries have a single class: the class posterior is"
        echo "certain, so L_mi and L_e are constant (no_mi and no_entropy train as hgad does) and the"
        echo "score is the log-likelihood alone; only the prior's shape and the intra-class centers"
        echo "differ between the HGAD rows."
    else
        echo
        echo "($shared not found: no MVTec AD run.)"
    fi
} >"$doc.tmp"
mv "$doc.tmp" "$doc"
echo "wrote $doc"
