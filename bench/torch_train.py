#!/usr/bin/python3
"""PyTorch CPU training-throughput reference: the same Mamba-1 / HyenaDNA LMs as bench/torch_mamba.py and
bench/torch_hyena.py (mamba_ssm's slow path with selective_scan_ref; the HyenaDNA HF port's math), trained
with next-token cross-entropy and torch.optim.AdamW on random DNA windows, timed per optimizer step.
Run it beside `longseq train` with the same shape, batch and threads:

    /usr/bin/python3 bench/torch_train.py --family mamba --d-model 128 --n-layer 2 --length 1024 --batch 8 --threads 2
"""
import argparse
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_hyena import HyenaLM  # noqa: E402
from torch_mamba import MambaLM  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", choices=["mamba", "hyenadna"], default="mamba")
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--n-layer", type=int, default=2)
    ap.add_argument("--length", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.family == "mamba":
        model = MambaLM(args.d_model, args.n_layer, 16)
    else:
        model = HyenaLM(args.d_model, args.n_layer, 4 * args.d_model, 16, args.length)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    params = sum(p.numel() for p in model.parameters())
    print(f"torch {torch.__version__} {args.family} d_model={args.d_model} n_layer={args.n_layer} params={params} "
          f"L={args.length} batch={args.batch} threads={torch.get_num_threads()}")
    times = []
    for step in range(args.steps + 1):
        ids = torch.randint(7, 11, (args.batch, args.length + 1))
        t0 = time.perf_counter()
        logits = model(ids[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step > 0:  # the first step includes one-off allocation
            times.append(time.perf_counter() - t0)
        print(f"step {step}: loss {float(loss):.4f} {time.perf_counter() - t0:.2f} s", flush=True)
    s = sum(times) / len(times)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"train {args.family}: {s:.3f} s/step  {args.batch * args.length / s:.0f} tokens/s  peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
