#!/bin/sh
# The main job on built-in data, with no downloads: generates a 3-category
# synthetic data set, trains one unified HGAD model with the built-in
# filter-bank encoder, evaluates it and writes the results table and heat-maps.
# Usage: tools/demo.sh [BUILD_DIR]
set -eu
# Other work on the machine makes spinning OpenMP threads slow (docs/architecture.md):
# with a busy second core, training takes about twice as long without this.
: "${OMP_WAIT_POLICY:=passive}"
export OMP_WAIT_POLICY
build=${1:-build}
out=$build/demo
hgad=$build/hgad
rm -rf "$out"
mkdir -p "$out"
start=$(date +%s)
# 120 normal training images per category: the disc's highlight sits at a
# random angle, and the flow must see it often enough at every position.
# 20 + 20 test images per category keep the AUROC from being too coarse.
echo "== 1/3 synthetic data set: granite, weave (textures) and disc (object)"
"$hgad" synth --output "$out/data" --categories granite,weave,disc --size 128 --seed 1 \
    --train 120 --test-good 20 --test-defective 20
echo "== 2/3 training one unified model (configs/demo.cfg)"
"$hgad" train --config configs/demo.cfg --root "$out/data" --output "$out/model"
echo "== 3/3 evaluation"
"$hgad" eval --checkpoint "$out/model/model.safetensors" --output "$out/eval" --heatmaps 6
end=$(date +%s)
cat <<MSG

Done in $((end - start)) s. Results: $out/eval/results.md, ROC curves: $out/eval/roc.png,
heat-maps (image | overlay | mask): $out/eval/heatmaps/<category>/.

To run on MVTec AD with pretrained weights (exported once with tools/export_weights.py):
  $hgad train --root /path/to/mvtec_anomaly_detection --backbone tf_efficientnet_b6 \\
      --weights tf_efficientnet_b6.safetensors --img-size 512 --output runs/mvtec
  $hgad eval --checkpoint runs/mvtec/model.safetensors --output runs/mvtec/eval
On this machine the one pretrained backbone is ../shared/weights/mobilenet_v2_tf_1001.safetensors:
  --backbone mobilenet_v2 --weights ../shared/weights/mobilenet_v2_tf_1001.safetensors
MSG
