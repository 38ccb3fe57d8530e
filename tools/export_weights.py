#!/usr/bin/env python3
"""Export pretrained ImageNet backbone weights to the safetensors files hgad loads.

Run it where timm / torchvision and internet access are available; the output
file is then copied to the machine running hgad. Tensor names stay the
reference state-dict names (spec/backbones.md), values float32.

Exact pretrained models:
  tf_efficientnet_b6  timm.create_model('tf_efficientnet_b6', pretrained=True)
                      with timm 0.6.7 (the version HGAD pins; its weights file is
                      tf_efficientnet_b6_aa-80ba17e4.pth). timm >= 0.9 names the
                      same weights 'tf_efficientnet_b6.aa_in1k'; this script tries
                      that name too.
  wide_resnet50_2     torchvision.models.wide_resnet50_2(weights='IMAGENET1K_V1')
                      (pretrained=True on torchvision < 0.13); with --source timm:
                      timm.create_model('wide_resnet50_2', pretrained=True), the
                      model CFLOW-AD uses (same names, other weights).
  resnet18            torchvision.models.resnet18(weights='IMAGENET1K_V1')
                      (--source timm: timm.create_model('resnet18', pretrained=True)).
  mobilenet_v2        not exported: hgad's mobilenet_v2 is Google's TF MobileNetV2
                      1.0/224 (1001 classes, TF "same" padding, input in [-1, 1]),
                      shipped as mobilenet_v2_tf_1001.safetensors. torchvision's
                      mobilenet_v2 weights were trained with symmetric padding, 1000
                      classes and ImageNet mean/std, so hgad would run them wrongly.

By default only the tensors hgad runs are written: the stem and stages 0-4 of
tf_efficientnet_b6, the stem and layer1-3 of the resnets (hgad ignores the
rest anyway). --full writes the whole state dict. num_batches_tracked entries
are kept as int64 (hgad ignores them).

Examples:
  python3 tools/export_weights.py tf_efficientnet_b6 tf_efficientnet_b6.safetensors
  python3 tools/export_weights.py wide_resnet50_2 wrn50_2.safetensors --source timm
Then:  hgad backbone-run --backbone tf_efficientnet_b6 --weights tf_efficientnet_b6.safetensors ...
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures"))
import safetensors_io  # noqa: E402  (float32 / int64, written to a temporary file then renamed)

MODELS = ("tf_efficientnet_b6", "wide_resnet50_2", "resnet18")


def used(name, key):
    """The state-dict entries hgad builds for `name`."""
    if name == "tf_efficientnet_b6":
        return key.startswith(("conv_stem.", "bn1.")) or any(
            key.startswith("blocks.%d." % s) for s in range(5))
    return not key.startswith(("layer4.", "fc."))


def load_timm(name):
    import timm
    names = [name, name + ".aa_in1k"] if name == "tf_efficientnet_b6" else [name]
    last = None
    for n in names:
        try:
            return timm.create_model(n, pretrained=True), "timm %s '%s'" % (timm.__version__, n)
        except Exception as e:  # unknown name in this timm version: try the next
            last = e
    raise SystemExit("export_weights: timm could not create %s: %s" % (name, last))


def load_torchvision(name):
    import torchvision
    ctor = getattr(torchvision.models, name)
    try:
        model = ctor(weights="IMAGENET1K_V1")
    except TypeError:  # torchvision < 0.13
        model = ctor(pretrained=True)
    return model, "torchvision %s %s IMAGENET1K_V1" % (torchvision.__version__, name)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", choices=MODELS + ("mobilenet_v2",))
    p.add_argument("output", help="safetensors file to write")
    p.add_argument("--source", choices=("default", "timm", "torchvision"), default="default",
                   help="tf_efficientnet_b6 always comes from timm; resnets default to torchvision")
    p.add_argument("--full", action="store_true", help="write the whole state dict")
    args = p.parse_args()
    if args.model == "mobilenet_v2":
        sys.exit("export_weights: mobilenet_v2 is not exported (see --help): use the shipped "
                 "mobilenet_v2_tf_1001.safetensors")
    source = args.source
    if args.model == "tf_efficientnet_b6":
        if source == "torchvision":
            sys.exit("export_weights: tf_efficientnet_b6 exists only in timm")
        source = "timm"
    elif source == "default":
        source = "torchvision"
    model, origin = load_timm(args.model) if source == "timm" else load_torchvision(args.model)
    tensors = {}
    for key, value in model.state_dict().items():
        if args.full or used(args.model, key):
            tensors[key] = value.detach().cpu().numpy()
    safetensors_io.save(args.output, tensors, {"arch": args.model, "source": origin,
                                               "exported_by": "tools/export_weights.py"})
    print("wrote %s: %d tensors from %s" % (args.output, len(tensors), origin))


if __name__ == "__main__":
    main()
