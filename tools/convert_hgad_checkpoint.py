"""Converts a checkpoint saved by the public HGAD code (HGAD_<dataset>_<flag>.pt:
{'nfs': [SequenceINN state dicts], 'mus', 'mu_deltas', 'phi_inters', 'phi_intras'})
into an hgad checkpoint (safetensors with the section-10 names and metadata).
Runs where PyTorch is installed. See docs/weights.md for what each option must match.

  python3 tools/convert_hgad_checkpoint.py HGAD_mvtec_img.pt hgad_mvtec.safetensors \
      --weights tf_efficientnet_b6.safetensors [--classes a,b,...] [--img-size 1024] ..."""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "fixtures"))
import safetensors_io  # noqa: E402

MVTEC = ("bottle,cable,capsule,carpet,grid,hazelnut,leather,metal_nut,pill,screw,tile,"
         "toothbrush,transistor,wood,zipper")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--weights", required=True, help="exported backbone weights (safetensors)")
    p.add_argument("--backbone", default="tf_efficientnet_b6")
    p.add_argument("--classes", default=MVTEC, help="class names in the public code's index order")
    p.add_argument("--img-size", type=int, default=1024)
    p.add_argument("--msk-size", type=int, default=256)
    p.add_argument("--cond-dim", type=int, default=256, help="--pos_embed_dim of the run")
    p.add_argument("--clamp", type=float, default=1.9, help="--clamp_alpha of the run")
    a = p.parse_args()
    ckpt = torch.load(a.src, map_location="cpu")
    tensors = {}
    for level, flow in enumerate(ckpt["nfs"]):
        for key, value in flow.items():
            tensors["nfs.%d.%s" % (level, key)] = value
    for group in ("mus", "mu_deltas", "phi_inters", "phi_intras"):
        for level, value in ckpt[group].items():
            tensors["%s.%s" % (group, level)] = value
    tensors = {k: v.detach().float().contiguous().numpy() for k, v in tensors.items()}
    levels = len(ckpt["nfs"])
    classes, centers = tensors["phi_intras.0"].shape
    names = a.classes.split(",")
    if len(names) != classes:
        sys.exit("convert: %d class names for a model of %d classes" % (len(names), classes))
    blocks = 1 + max(int(k.split(".")[3]) for k in tensors if k.startswith("nfs.0."))
    metadata = {
        "hgad.dims": ",".join(str(tensors["mus.%d" % l].shape[1]) for l in range(levels)),
        "hgad.levels": levels, "hgad.classes": classes, "hgad.intra_centers": centers,
        "hgad.coupling_blocks": blocks, "hgad.cond_dim": a.cond_dim, "hgad.clamp": a.clamp,
        "class_names": ",".join(names), "backbone": a.backbone, "encoder": "multiscale",
        "weights": a.weights, "img_size": a.img_size, "crop_size": a.img_size,
        "msk_size": a.msk_size, "epoch": ckpt.get("epoch", -1),
    }
    safetensors_io.save(a.dst, tensors, metadata)
    print("wrote %s: %d tensors" % (a.dst, len(tensors)))


if __name__ == "__main__":
    main()
