#!/usr/bin/python3
"""PyTorch CPU reference for bench comparisons: the same HyenaDNA LM as longseq runs, written the way
the Hugging Face port computes it (in_proj, depthwise short conv, implicit filter MLP with sin and
exponential modulation, fftconv with torch.fft at size 2L, gated, MLP with tanh-GELU). Random
weights of the requested shape; prints time per token and peak RSS for side-by-side runs:

    /usr/bin/python3 bench/torch_hyena.py --length 262144 --threads 2
    build/bench/hyena-bench --length 262144 --threads 2
"""
import argparse
import math
import resource
import time

import torch
import torch.nn.functional as F


def fftconv(u, k, D):
    seqlen = u.shape[-1]
    fft_size = 2 * seqlen
    k_f = torch.fft.rfft(k, n=fft_size) / fft_size
    u_f = torch.fft.rfft(u, n=fft_size)
    y = torch.fft.irfft(u_f * k_f, n=fft_size, norm="forward")[..., :seqlen]
    return y + u * D.unsqueeze(-1)


class Sin(torch.nn.Module):
    def __init__(self, dim, w=10):
        super().__init__()
        self.freq = torch.nn.Parameter(w * torch.ones(1, dim))

    def forward(self, x):
        return torch.sin(self.freq * x)


class HyenaFilter(torch.nn.Module):
    def __init__(self, d_model, max_len, order=64, emb_dim=5, inner=2):
        super().__init__()
        t = torch.linspace(0, 1, max_len)[None, :, None]
        bands = (emb_dim - 1) // 2
        w = 2 * math.pi * torch.linspace(0, max_len - 1, max_len)[None, :, None] / max_len
        f = torch.linspace(1e-4, bands - 1, bands)[None, None]
        z = torch.exp(-1j * f * w)
        self.register_buffer("z", torch.cat([t, z.real, z.imag], dim=-1))
        self.register_buffer("t", t)
        act = Sin(order)
        layers = [torch.nn.Linear(emb_dim, order), act]
        for _ in range(inner):
            layers += [torch.nn.Linear(order, order), act]
        layers.append(torch.nn.Linear(order, d_model, bias=False))
        self.mlp = torch.nn.Sequential(*layers)
        self.deltas = torch.linspace(math.log(1e-2) / 1.5, math.log(1e-2) / 0.3, d_model)[None, None]
        self.bias = torch.nn.Parameter(torch.randn(d_model))

    def filter(self, L):
        h = self.mlp(self.z[:, :L])
        return h * (torch.exp(-self.t[:, :L] * self.deltas.abs()) + 0.05)


class Block(torch.nn.Module):
    def __init__(self, d, d_inner, max_len):
        super().__init__()
        self.norm1, self.norm2 = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
        self.in_proj = torch.nn.Linear(d, 3 * d)
        self.short_filter = torch.nn.Conv1d(3 * d, 3 * d, 3, padding=2, groups=3 * d)
        self.filter_fn = HyenaFilter(d, max_len)
        self.out_proj = torch.nn.Linear(d, d)
        self.fc1, self.fc2 = torch.nn.Linear(d, d_inner), torch.nn.Linear(d_inner, d)
        self.d = d

    def forward(self, x):
        L = x.shape[1]
        u = self.in_proj(self.norm1(x)).transpose(1, 2)
        uc = self.short_filter(u)[..., :L]
        x0, x1, v = uc.split(self.d, dim=1)
        k = self.filter_fn.filter(L)[0].transpose(0, 1)
        v = fftconv(v * x1, k, self.filter_fn.bias)
        x = x + self.out_proj((v * x0).transpose(1, 2))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x)), approximate="tanh"))


class HyenaLM(torch.nn.Module):
    def __init__(self, d, n_layer, d_inner, vocab, max_len):
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, d)
        self.blocks = torch.nn.ModuleList(Block(d, d_inner, max_len) for _ in range(n_layer))
        self.ln_f = torch.nn.LayerNorm(d)
        self.head = torch.nn.Linear(d, vocab, bias=False)

    def forward(self, ids):
        x = self.emb(ids)
        for b in self.blocks:
            x = b(x)
        return self.head(self.ln_f(x))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--n-layer", type=int, default=8)
    ap.add_argument("--d-inner", type=int, default=1024)
    ap.add_argument("--length", type=int, nargs="+", default=[1024])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = HyenaLM(args.d_model, args.n_layer, args.d_inner, 16, max(args.length)).eval()
    print(f"torch {torch.__version__} hyenadna d_model={args.d_model} n_layer={args.n_layer} d_inner={args.d_inner} "
          f"threads={torch.get_num_threads()}")
    for L in args.length:
        ids = torch.randint(7, 11, (1, L))
        with torch.no_grad():
            t0 = time.perf_counter()
            logits = model(ids)
            s = time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"forward L={L:<8} {s:9.2f} s {1e6 * s / L:9.2f} us/token {L / s:10.1f} tokens/s  peak RSS {rss:7.0f} MiB "
              f"(checksum {float(logits[0, 0, 7]):.3f})", flush=True)


if __name__ == "__main__":
    main()
