#!/bin/sh
# The model zoo's comparison tables: every entry of configs/zoo (HGAD, CFLOW-AD,
# the HGAD ablations) trained and evaluated by 'hgad zoo' with a CPU preset on
#   1. the demo's 3-category synthetic data set with the built-in filter-bank
#      encoder and the demo's preset, configs/demo.cfg (no downloads), and
#   2. when ../shared exists, MVTec AD bottle with the shared ImageNet
#      MobileNetV2 (one category: see the note written into the result).
# Writes OUTPUT_DIR/zoo_results.md (docs/zoo_results.md is a copy of one run).
# Usage (from the repository root): tools/zoo_table.sh [BUILD_DIR] [OUTPUT_DIR]
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
# The synthetic one is the demo's, read from configs/demo.cfg (the built-in
# filter-bank encoder, and the sizes and schedule tuned for it, learning rate
# included: the configs' lr 2e-4 leaves the flows near their initialization in
# a run this short), with the mask size set to the image size (the zoo configs
# set their own). Every key of demo.cfg is an option 'hgad zoo' forwards.
demo_cfg=configs/demo.cfg
[ -f "$demo_cfg" ] || { echo "zoo_table.sh: run from the repository root ($demo_cfg not found)" >&2; exit 2; }
synthetic_preset=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' \
    -e 's/^[[:space:]]*\([a-z0-9-]*\)[[:space:]]*=[[:space:]]*\(.*[^[:space:]]\)[[:space:]]*$/--\1 \2/' \
    "$demo_cfg" | tr '\n' ' ')
demo_size=$(sed -n 's/^[[:space:]]*img-size[[:space:]]*=[[:space:]]*\([0-9]*\).*/\1/p' "$demo_cfg")
synthetic_preset="$synthetic_preset--msk-size ${demo_size:?img-size missing in $demo_cfg}"
# bottle: the sizes and schedule of configs/bottle_mobilenet.cfg (tools/bottle_check.sh);
# each entry keeps its own encoder (HGAD's multi-scale one: 3 levels).
bottle_preset="--img-size 256 --msk-size 256 --levels 3 --coupling-blocks 8 --cond-dim 128 --epochs 8 --sub-epochs 4 --batch 8"

mkdir -p "$out"
started=$(date -u '+%Y-%m-%d %H:%M UTC')
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
load=$(cut -d ' ' -f 1-3 /proc/loadavg 2>/dev/null || echo unknown)

# The demo's data set (tools/demo.sh), which its preset was tuned on.
echo "== synthetic data set (granite, weave, disc), preset of $demo_cfg"
rm -rf "$out/data"
"$hgad" synth --output "$out/data" --categories granite,weave,disc --size "$demo_size" --seed 1 \
    --train 120 --test-good 20 --test-defective 20
# shellcheck disable=SC2086 # the presets are word lists
"$hgad" zoo --root "$out/data" $synthetic_preset --output "$out/synthetic"

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
    echo "same modules (\`configs/zoo/*.cfg\`); the CPU preset overrides all sizes alike (on the"
    echo "synthetic data also the schedule and learning rate, those of \`$demo_cfg\`),"
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
