"""PyTorch time of one HGAD training step of one level (the committed reference
of tools/fixtures/make_flow_fixtures.py, in float32): flow of K coupling blocks,
hierarchical-prior losses of the full phase, backward, Adam step.
Usage: torch_flow_step.py N D DC K THREADS REPEATS  -> prints median seconds."""
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
import make_flow_fixtures as ref  # noqa: E402


def main():
    n, d, dc, k, threads, repeats = (int(a) for a in sys.argv[1:7])
    torch.set_num_threads(threads)
    torch.set_default_dtype(torch.float64)
    gen = torch.Generator().manual_seed(0)
    classes, centers = 15, 10
    params = {}
    for b in range(k):
        params.update(ref.make_block(f"nfs.0.module_list.{b}.", d, dc, gen))
    params.update(ref.init_prior(0, classes, d, centers, gen))
    torch.set_default_dtype(torch.float32)
    leaves = {name: v.to(torch.float32).requires_grad_("w_perm" not in name)
              for name, v in params.items()}
    opt = torch.optim.Adam([v for name, v in leaves.items() if "w_perm" not in name],
                           lr=2e-4, betas=(0.95, 0.99), weight_decay=1e-4)
    x = torch.randn(n, d)
    cond = torch.randn(n, dc)
    y = torch.randint(0, classes, (n,))
    times = []
    for r in range(repeats + 1):
        start = time.perf_counter()
        z, logdet = ref.chain_forward(leaves, "nfs.0.", k, x, cond, 1.9)
        loss = ref.total_loss(ref.prior_losses(leaves, 0, z, logdet, y, classes, 0.02, True), True)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if r:  # the first run warms up allocators and thread pools
            times.append(time.perf_counter() - start)
    print(f"{statistics.median(times):.6f}")


if __name__ == "__main__":
    main()
