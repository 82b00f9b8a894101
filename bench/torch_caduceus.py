#!/usr/bin/python3
"""PyTorch CPU reference for bench comparisons: Caduceus written like the official code
(kuleshov-group/caduceus modeling_caduceus.py / modeling_rcps.py: BiMambaWrapper with tied in/out
projections, RCPSEmbedding, RCPSWrapper, the fused RCPS add + norm as released, RCPSLMHead) over the
Mamba-1 slow path of bench/torch_mamba.py (nn.Conv1d + SiLU and mamba_ssm's selective_scan_ref).
Random weights of the requested shape; prints seconds, tokens/s and peak RSS per length, to run
beside build/bench/caduceus-bench:

    /usr/bin/python3 bench/torch_caduceus.py --length 16384 --threads 2
    build/bench/caduceus-bench --length 16384 --threads 2
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_mamba import Mixer, RMSNorm, time_lengths  # noqa: E402

COMPLEMENT = [10 if v == 7 else 7 if v == 10 else 9 if v == 8 else 8 if v == 9 else v for v in range(16)]


class BiMamba(torch.nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fwd, self.rev = Mixer(d), Mixer(d)
        self.rev.in_proj.weight = self.fwd.in_proj.weight  # bidirectional_weight_tie
        self.rev.out_proj.weight = self.fwd.out_proj.weight

    def forward(self, h):
        return self.fwd(h) + self.rev(h.flip(dims=(1,))).flip(dims=(1,))


def rc(x):
    return torch.flip(x, dims=[-2, -1])


class CaduceusPS(torch.nn.Module):
    def __init__(self, d, n_layer, vocab=16):
        super().__init__()
        self.d = d
        self.embedding = torch.nn.Embedding(vocab, d)
        self.norms = torch.nn.ModuleList(RMSNorm(d) for _ in range(n_layer))
        self.mixers = torch.nn.ModuleList(BiMamba(d) for _ in range(n_layer))
        self.norm_f = RMSNorm(d)
        self.register_buffer("complement", torch.tensor(COMPLEMENT))

    def forward(self, ids):
        d = self.d
        rc_ids = torch.gather(self.complement.unsqueeze(0).expand(ids.shape[0], -1), 1, torch.flip(ids, dims=[-1]))
        hidden, residual = torch.cat([self.embedding(ids), rc(self.embedding(rc_ids))], dim=-1), None
        for norm, mixer in zip(self.norms, self.mixers):
            s = hidden if residual is None else hidden + residual
            fwd, rev = s[..., d:], rc(s[..., :d])  # the released fused path's halves
            residual = torch.cat([fwd, rc(rev)], dim=-1)
            h = torch.cat([norm(fwd), rc(norm(rev))], dim=-1)
            hidden = torch.cat([mixer(h[..., :d]), rc(mixer(rc(h[..., d:])))], dim=-1)
        s = hidden + residual
        h = torch.cat([self.norm_f(s[..., :d]), rc(self.norm_f(rc(s[..., d:])))], dim=-1)
        w = self.embedding.weight
        return h[..., :d] @ w.t() + torch.flip(h[..., d:], dims=[-1]) @ w[self.complement].t()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--n-layer", type=int, default=16)
    ap.add_argument("--length", type=int, nargs="+", default=[16384])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = CaduceusPS(args.d_model, args.n_layer).eval()
    print(f"torch {torch.__version__} caduceus-ps d_model={args.d_model} n_layer={args.n_layer} threads={torch.get_num_threads()}")
    time_lengths(model, args.length, 7, 11, "forward")

if __name__ == "__main__":
    main()
