#!/usr/bin/python3
"""The official Evo 2 code (Zymrael/vortex's StripedHyena, which ArcInstitute/evo2 loads) on the
CPU, for side-by-side runs with evo2-bench: random weights of a released shape, one forward of L
tokens, time and peak RSS. Nothing of vortex is in this project; bring it once (outside it):

    # vortex @ cb229ae and einops v0.8.1 (the fixtures' versions), with the CPU shims of
    # ../shared/fixtures/evo2_vortex_cpu_shims.patch (pure-torch flash-attn and rotary, a
    # precision switch VORTEX_PREC = native | f32):
    mkdir -p /tmp/anchor/vortex_src && cd /tmp/anchor
    git -C <vortex mirror> archive cb229ae vortex | tar x -C vortex_src
    git -C <einops mirror> archive v0.8.1 einops | tar x
    cp -r vortex_src patched && patch -p0 < ../shared/fixtures/evo2_vortex_cpu_shims.patch
    VORTEX_PREC=f32 /usr/bin/python3 bench/evo2_vortex.py --vortex /tmp/anchor --length 8192
    build/bench/evo2-bench -L 8192 --threads 2

Random log-poles drawn from randn are partly positive, which makes the modal filters explode to
inf; they are made negative (decaying), as a trained model's are. FP8 input projections
(Transformer Engine) are off, as evo2 runs without TE.
"""
import argparse
import os
import resource
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vortex", required=True, help="folder holding patched/vortex and einops")
    ap.add_argument("--config", default=os.path.join(os.path.dirname(__file__), "../../shared/fixtures/evo2_released_configs/evo2-1b-8k.yml"))
    ap.add_argument("--length", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    sys.path[:0] = [os.path.join(a.vortex, "patched"), a.vortex]
    import torch
    import yaml
    from vortex.model.model import StripedHyena
    from vortex.model.utils import dotdict

    cfg = yaml.safe_load(open(a.config))
    cfg["use_fp8_input_projections"] = False
    cfg["use_flashfft"] = False
    torch.manual_seed(0)
    torch.set_num_threads(a.threads)
    t0 = time.time()
    m = StripedHyena(dotdict(cfg))
    with torch.no_grad():
        for k, p in m.named_parameters():
            if k.endswith("log_poles"):
                p.copy_(-p.abs() - 1e-2)
    m.to_bfloat16_except_pr_lc(to_float32=True)  # what vortex's load_checkpoint does (dtypes per VORTEX_PREC)
    m.eval()
    init = time.time() - t0
    ids = torch.tensor([[b"ACGT"[i] for i in torch.randint(0, 4, (a.length,)).tolist()]], dtype=torch.long)
    with torch.inference_mode():
        t0 = time.time()
        logits = m(ids)[0]
        t = time.time() - t0
    print(f"official vortex {os.environ.get('VORTEX_PREC', 'native')}: L={a.length} forward {t:.2f} s, init {init:.1f} s, "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB, logits {tuple(logits.shape)} {logits.dtype}, "
          f"finite {bool(torch.isfinite(logits.float()).all())}")


if __name__ == "__main__":
    main()
