"""PyTorch side of the HGAD benchmarks (bench/bench_flow.c, bench/bench_epoch.c,
bench/bench_score.c, bench/bench_scaling.c): the same work as our C code, written with the committed
PyTorch references (tools/fixtures/make_flow_fixtures.py for flows and priors,
tools/fixtures/make_backbone_fixtures.py for the backbones) in float32, eager
mode, as the public code runs.

Every mode prints one line
    seconds=S peak_mb=P base_mb=B [key=value ...]
seconds: the median wall time of the timed runs (after one warm-up run);
peak_mb: this process's peak RSS (getrusage ru_maxrss); base_mb: its RSS after
importing torch and the references, before building anything (the cost of the
runtime itself; peak_mb - base_mb is the memory of the work).

Modes (THREADS: torch.set_num_threads; the caller pins OMP_NUM_THREADS and
MKL_NUM_THREADS to THREADS too, and OPENBLAS_NUM_THREADS, which sizes the
OpenBLAS pool of Debian's torch matmuls, separately: bench/bench_common.h runs
each case in the settings THREADS/OpenBLAS = 1/1, 2/2, 1/2, 2/1):
  step N D DC K THREADS REPS
      one training step of one level: flow of K coupling blocks, hierarchical
      prior losses of the full phase, backward, Adam step (15 classes).
  epoch DIR THREADS SUB_EPOCHS BATCH
      one meta epoch (full phase) over the cached features exported to DIR by
      bench_epoch: DIR/level{l}.npy (images, H*W, D), DIR/shape.txt (levels,
      then "D H W" per level), DIR/labels.npy; SUB_EPOCHS passes over the
      shuffled images, BATCH images per batch (drop_last), per batch one step
      per level. Runs once (no warm-up epoch: the first batch is a warm-up of
      its own, as in our epoch).
  score PNG SIZE MSK THREADS REPS
      one image end to end: PIL decode, Resize(SIZE, LANCZOS), CenterCrop,
      ToTensor, Normalize (mobilenet_v2's [-1, 1]); mobilenet_v2 (torchvision,
      TF padding, random weights) on SIZE, SIZE/2, SIZE/4 up to features.13;
      per level the flow and the hierarchical prior's evidence (log-likelihood,
      negative entropy) for class 0; anomaly maps (exp, bilinear upsampling to
      MSK, sum, s - S, Gaussian blur sigma 4 with scipy) and their product;
      the image score is its maximum. The normalization constants come from the
      warm-up run (a deployed detector stores them).
  extract_step SIZE THREADS REPS
      tf_efficientnet_b6 (random weights) multiscale features of one SIZE x
      SIZE image (3 levels, stride 16, 200 channels), then one training step of
      every level on a batch of 8 copies of those maps. Prints seconds (both),
      extract_seconds and step_seconds (medians of each part).

Run: python3 tools/bench/torch_hgad.py MODE ...   (Debian python3-torch; score
and extract_step also python3-torchvision, python3-scipy, python3-pil)."""
import os
import resource
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fixtures"))
import make_backbone_fixtures as bref  # noqa: E402
import make_flow_fixtures as ref  # noqa: E402  (sets float64 as the default dtype)

torch.set_default_dtype(torch.float32)
CLASSES, CENTERS, CLAMP, EPS = 15, 10, 1.9, 0.02


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def report(base, times, **extra):
    fields = " ".join("%s=%.6f" % kv for kv in extra.items())
    print("seconds=%.6f peak_mb=%.1f base_mb=%.1f %s" % (statistics.median(times), rss_mb(), base,
                                                          fields), flush=True)


def make_model(levels, dims, cond_dim, blocks, classes):
    """Flows and priors of every level (float32 leaves) and one Adam over all of
    them, with the public code's optimizer settings."""
    gen = torch.Generator().manual_seed(0)
    params = {}
    torch.set_default_dtype(torch.float64)  # the references initialize in float64
    for level in range(levels):
        for b in range(blocks):
            params.update(ref.make_block(f"nfs.{level}.module_list.{b}.", dims[level], cond_dim,
                                         gen))
        params.update(ref.init_prior(level, classes, dims[level], CENTERS, gen))
    torch.set_default_dtype(torch.float32)
    leaves = {name: v.to(torch.float32).requires_grad_("w_perm" not in name)
              for name, v in params.items()}
    opt = torch.optim.Adam([v for name, v in leaves.items() if "w_perm" not in name], lr=2e-4,
                           betas=(0.95, 0.99), weight_decay=1e-4)
    return leaves, opt


def train_step(leaves, opt, level, blocks, classes, x, cond, y):
    z, logdet = ref.chain_forward(leaves, f"nfs.{level}.", blocks, x, cond, CLAMP)
    loss = ref.total_loss(ref.prior_losses(leaves, level, z, logdet, y, classes, EPS, True), True)
    opt.zero_grad()  # torch 1.13: zero (not None) gradients, all parameters stepped
    loss.backward()
    opt.step()


def mode_step(argv):
    n, d, dc, k, threads, reps = (int(a) for a in argv[:6])
    torch.set_num_threads(threads)
    base = rss_mb()
    leaves, opt = make_model(1, [d], dc, k, CLASSES)
    x, cond = torch.randn(n, d), torch.randn(n, dc)
    y = torch.randint(0, CLASSES, (n,))
    times = []
    for r in range(reps + 1):
        t0 = time.perf_counter()
        train_step(leaves, opt, 0, k, CLASSES, x, cond, y)
        if r:
            times.append(time.perf_counter() - t0)
    report(base, times)


def mode_epoch(argv):
    folder = argv[0]
    threads, sub_epochs, batch = (int(a) for a in argv[1:4])
    torch.set_num_threads(threads)
    base = rss_mb()
    with open(os.path.join(folder, "shape.txt")) as f:
        rows = [[int(v) for v in line.split()] for line in f if line.strip()]
    levels, shapes = rows[0][0], rows[1:]
    feats = [torch.from_numpy(np.load(os.path.join(folder, "level%d.npy" % l)))
             for l in range(levels)]
    labels = torch.from_numpy(np.load(os.path.join(folder, "labels.npy")))
    classes = int(labels.max()) + 1
    images = labels.shape[0]
    batch = min(batch, images)
    dims = [s[0] for s in shapes]
    leaves, opt = make_model(levels, dims, 256, 12, classes)
    conds = [ref.positional(256, h, w).repeat(batch, 1) for _, h, w in shapes]
    start = time.perf_counter()
    steps = 0
    for _ in range(sub_epochs):
        order = torch.randperm(images)
        for b in range(images // batch):
            idx = order[b * batch:(b + 1) * batch]
            for level in range(levels):
                x = feats[level][idx].reshape(-1, dims[level])
                y = labels[idx].repeat_interleave(feats[level].shape[1])
                train_step(leaves, opt, level, 12, classes, x, conds[level], y)
                steps += 1
    report(base, [time.perf_counter() - start], steps=steps)


def evidence(leaves, level, blocks, x, cond, class_id):
    """Section 7 evidence of rows x as class `class_id` (as models/prior_mixture.c)."""
    z, logdet = ref.chain_forward(leaves, f"nfs.{level}.", blocks, x, cond, CLAMP)
    dim = z.shape[1]
    mu = leaves[f"mus.{level}"]
    centers = torch.cat([mu[class_id][None], mu[class_id][None] + leaves[f"mu_deltas.{level}"][class_id]])
    e = (z * z).sum(1, keepdim=True) + (centers * centers).sum(1)[None] - 2 * z @ centers.t()
    log_rho = torch.log_softmax(leaves[f"phi_intras.{level}"][class_id], 0)[None]
    logp = (dim * ref.GCONST + torch.logsumexp(-0.5 * e + log_rho, 1) + logdet) / dim
    d = (z * z).sum(1, keepdim=True) + (mu * mu).sum(1)[None] - 2 * z @ mu.t()
    neg_entropy = (torch.softmax(-0.5 * d, 1) * torch.log_softmax(-0.5 * d, 1)).sum(1)
    return logp, neg_entropy


def anomaly_map(maps, msk, norm):
    """Section 7 for one kind of evidence; norm = (per-level maxima, summed max) or None
    to measure them on these maps."""
    from scipy.ndimage import gaussian_filter
    level_max = norm[0] if norm else [float(m.max()) for m in maps]
    summed = sum(F.interpolate(torch.exp(m - mx)[None, None], size=(msk, msk), mode="bilinear",
                               align_corners=True)[0, 0] for m, mx in zip(maps, level_max))
    top = norm[1] if norm else float(summed.max())
    return gaussian_filter((top - summed).numpy(), sigma=4), (level_max, top)


def mode_score(argv):
    from PIL import Image
    import torchvision.transforms as T
    path = argv[0]
    size, msk, threads, reps = (int(a) for a in argv[1:5])
    torch.set_num_threads(threads)
    base = rss_mb()
    torch.manual_seed(0)
    backbone = bref.build("mobilenet_v2").eval()
    levels, tap, dim = 3, 13, 96
    leaves, _ = make_model(levels, [dim] * levels, 256, 12, 5)
    for v in leaves.values():
        v.requires_grad_(False)
    pre = T.Compose([T.Resize(size, T.InterpolationMode.LANCZOS), T.CenterCrop(size), T.ToTensor(),
                     T.Normalize([0.5] * 3, [0.5] * 3)])
    conds = {}
    norms = [None, None]
    times = []
    for r in range(reps + 1):
        t0 = time.perf_counter()
        with torch.no_grad():
            x = pre(Image.open(path).convert("RGB"))[None]
            kinds = ([], [])
            for level in range(levels):
                s = size >> level
                xl = x if level == 0 else F.interpolate(x, size=(s, s), mode="bilinear",
                                                        align_corners=True)
                fmap = bref.taps_of("mobilenet_v2", backbone, xl, tap)[tap]
                _, c, h, w = fmap.shape
                if (h, w) not in conds:
                    conds[(h, w)] = ref.positional(256, h, w)
                rows = fmap[0].permute(1, 2, 0).reshape(h * w, c)
                logp, neg_entropy = evidence(leaves, level, 12, rows, conds[(h, w)], 0)
                kinds[0].append(logp.reshape(h, w))
                kinds[1].append(neg_entropy.reshape(h, w))
            a1, norms[0] = anomaly_map(kinds[0], msk, norms[0])
            a2, norms[1] = anomaly_map(kinds[1], msk, norms[1])
            score = float((a1 * a2).max())
        if r:
            times.append(time.perf_counter() - t0)
    report(base, times, score=score)


def mode_extract_step(argv):
    size, threads, reps = (int(a) for a in argv[:3])
    torch.set_num_threads(threads)
    base = rss_mb()
    torch.manual_seed(0)
    backbone = bref.TfEfficientNetB6(n_stages=5).eval()  # stages 5-6 never run
    levels, batch, dim = 3, 8, 200
    leaves, opt = make_model(levels, [dim] * levels, 256, 12, CLASSES)
    image = torch.randn(1, 3, size, size)
    extract, step, total = [], [], []
    for r in range(reps + 1):
        t0 = time.perf_counter()
        with torch.no_grad():
            maps = []
            for level in range(levels):
                s = size >> level
                xl = image if level == 0 else F.interpolate(image, size=(s, s), mode="bilinear",
                                                            align_corners=True)
                maps.append(bref.taps_of("tf_efficientnet_b6", backbone, xl, 3)[3])
        t1 = time.perf_counter()
        for level, fmap in enumerate(maps):
            _, c, h, w = fmap.shape
            rows = fmap[0].permute(1, 2, 0).reshape(h * w, c).repeat(batch, 1)
            cond = ref.positional(256, h, w).repeat(batch, 1)
            y = torch.arange(batch).repeat_interleave(h * w) % CLASSES
            train_step(leaves, opt, level, 12, CLASSES, rows, cond, y)
        t2 = time.perf_counter()
        if r:
            extract.append(t1 - t0)
            step.append(t2 - t1)
            total.append(t2 - t0)
    report(base, total, extract_seconds=statistics.median(extract),
           step_seconds=statistics.median(step))


def main():
    modes = {"step": mode_step, "epoch": mode_epoch, "score": mode_score,
             "extract_step": mode_extract_step}
    if len(sys.argv) < 2 or sys.argv[1] not in modes:
        sys.exit("usage: torch_hgad.py step|epoch|score|extract_step ... (see the docstring)")
    modes[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
