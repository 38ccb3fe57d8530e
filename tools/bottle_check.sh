#!/bin/sh
# Real-data check (issue 5): trains HGAD on ../shared/data/mvtec_ad/bottle with
# the shared MobileNetV2 and the CPU preset configs/bottle_mobilenet.cfg, then
# prints image and pixel AUROC. Usage: tools/bottle_check.sh [BUILD_DIR] [extra train options]
set -eu
build=${1:-build}
[ $# -gt 0 ] && shift
shared=${HG_SHARED_DIR:-../shared}
weights=$shared/weights/mobilenet_v2_tf_1001.safetensors
if [ ! -f "$weights" ] || [ ! -d "$shared/data/mvtec_ad/bottle" ]; then
    echo "bottle_check: $shared (weights and data/mvtec_ad/bottle) is not here; nothing to do"
    exit 0
fi
out=$build/bottle
rm -rf "$out"
start=$(date +%s)
"$build/hgad" train --config configs/bottle_mobilenet.cfg --weights "$weights" \
    --root "$shared/data/mvtec_ad" --categories bottle --output "$out/model" --quiet "$@"
trained=$(date +%s)
"$build/hgad" eval --checkpoint "$out/model/model.safetensors" --output "$out/eval" --quiet
end=$(date +%s)
echo "bottle_check: train $((trained - start)) s, eval $((end - trained)) s"
