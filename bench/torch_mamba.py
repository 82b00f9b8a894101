#!/usr/bin/python3
"""PyTorch CPU reference for bench comparisons: the same Mamba-1 LM as longseq runs, written after
mamba_ssm's own slow path (Mamba.forward with use_fast_path=False: nn.Conv1d + SiLU, and
selective_scan_ref, the official pure-PyTorch scan). Random weights of the requested shape; prints
tokens/s and peak RSS so the two can be run side by side:

    /usr/bin/python3 bench/torch_mamba.py --length 2048 16384 --threads 1
    build/bench/mamba-bench --length 2048 16384 --threads 1
"""
import argparse
import math
import resource
import time

import torch
import torch.nn.functional as F


def selective_scan_ref(u, delta, A, B, C, D, z, delta_bias):
    """mamba_ssm.ops.selective_scan_interface.selective_scan_ref for real A, 3-D B and C."""
    delta = F.softplus(delta + delta_bias[..., None])
    batch, dim, dstate = u.shape[0], A.shape[0], A.shape[1]
    x = A.new_zeros((batch, dim, dstate))
    delta_a = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    delta_b_u = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)
    ys = []
    for i in range(u.shape[2]):
        x = delta_a[:, :, i] * x + delta_b_u[:, :, i]
        ys.append(torch.einsum("bdn,bn->bd", x, C[:, :, i]))
    y = torch.stack(ys, dim=2)
    out = y + u * D[None, :, None]
    return out * F.silu(z)


class Mixer(torch.nn.Module):
    def __init__(self, d_model, d_state=16, d_conv=4, expand=2):
        super().__init__()
        self.d_inner = expand * d_model
        self.dt_rank = math.ceil(d_model / 16)
        self.d_state = d_state
        self.in_proj = torch.nn.Linear(d_model, 2 * self.d_inner, bias=False)
        self.conv1d = torch.nn.Conv1d(self.d_inner, self.d_inner, d_conv, groups=self.d_inner, padding=d_conv - 1)
        self.x_proj = torch.nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = torch.nn.Linear(self.dt_rank, self.d_inner, bias=True)
        self.A_log = torch.nn.Parameter(torch.log(torch.arange(1, d_state + 1).float()).repeat(self.d_inner, 1))
        self.D = torch.nn.Parameter(torch.ones(self.d_inner))
        self.out_proj = torch.nn.Linear(self.d_inner, d_model, bias=False)

    def forward(self, h):  # (B, L, d)
        L = h.shape[1]
        xz = self.in_proj(h).transpose(1, 2)  # (B, 2D, L)
        x, z = xz.chunk(2, dim=1)
        x = F.silu(self.conv1d(x)[..., :L])
        x_dbl = self.x_proj(x.transpose(1, 2))  # (B, L, R + 2N)
        dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = (self.dt_proj.weight @ dt.transpose(1, 2))  # (B, D, L), bias added in the scan
        y = selective_scan_ref(x, dt, -torch.exp(self.A_log), B.transpose(1, 2), C.transpose(1, 2), self.D, z,
                               self.dt_proj.bias)
        return self.out_proj(y.transpose(1, 2))


class RMSNorm(torch.nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class MambaLM(torch.nn.Module):
    def __init__(self, d_model, n_layer, vocab):
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab, d_model)
        self.norms = torch.nn.ModuleList(RMSNorm(d_model) for _ in range(n_layer))
        self.mixers = torch.nn.ModuleList(Mixer(d_model) for _ in range(n_layer))
        self.norm_f = RMSNorm(d_model)

    def forward(self, ids):
        residual = self.embedding(ids)
        for norm, mixer in zip(self.norms, self.mixers):
            residual = residual + mixer(norm(residual))
        return self.norm_f(residual) @ self.embedding.weight.t()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d-model", type=int, default=768)
    ap.add_argument("--n-layer", type=int, default=24)
    ap.add_argument("--vocab", type=int, default=16)
    ap.add_argument("--length", type=int, nargs="+", default=[2048])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = MambaLM(args.d_model, args.n_layer, args.vocab).eval()
    print(f"torch {torch.__version__} mamba d_model={args.d_model} n_layer={args.n_layer} vocab={args.vocab} "
          f"threads={torch.get_num_threads()}")
    time_lengths(model, args.length, 0, args.vocab, "prefill")


def time_lengths(model, lengths, lo, hi, label):
    """One forward per length on random ids in [lo, hi): seconds, tokens/s and the process peak RSS."""
    for L in lengths:
        ids = torch.randint(lo, hi, (1, L))
        with torch.no_grad():
            t0 = time.perf_counter()
            logits = model(ids)
            s = time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{label} L={L:<8} {s:9.2f} s {L / s:10.1f} tokens/s   peak RSS {rss:7.0f} MiB  "
              f"(checksum {float(logits[0, -1, 0]):.4f})", flush=True)


if __name__ == "__main__":
    main()
