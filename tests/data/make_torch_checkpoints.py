#!/usr/bin/env python3
"""Writes PyTorch checkpoints with Debian's python3-torch for tests/unit/test_torch_checkpoint.cpp.

Usage: make_torch_checkpoints.py OUT_DIR
       make_torch_checkpoints.py --from-safetensors IN.safetensors OUT.bin   (a model's weights as torch.save writes them)

Each checkpoint's expected tensors go beside it as manifest JSON (name -> dtype, shape, file of the
contiguous little-endian bytes), so the C++ reader is checked against what torch itself holds.
The files: every dtype (zip), views (non-contiguous, offsets, shared storages, stride 0, a module's
state dict with its _metadata, Parameters), the legacy (pre-1.6) format, Transformer Engine style
`_extra_state` entries, a training checkpoint with the state dict under "state_dict", and two that
must be refused (a global that a state dict does not use; a view outside its storage).
"""
import collections
import io
import json
import os
import sys
import zipfile

import torch

DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64,
    "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool,
}
NAMES = {v: k for k, v in DTYPES.items()}


def save(out, name, obj, tensors, **kw):
    torch.save(obj, os.path.join(out, name), **kw)
    manifest = {}
    for key, t in tensors.items():
        raw = f"{name}.{len(manifest)}.raw"
        c = t.detach().contiguous()
        if c.dtype == torch.bfloat16:  # numpy has no bfloat16: its bits as int16
            data = c.view(torch.int16).numpy().tobytes()
        else:
            data = c.numpy().tobytes()
        with open(os.path.join(out, raw), "wb") as f:
            f.write(data)
        manifest[key] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "raw": raw}
    with open(os.path.join(out, name + ".json"), "w") as f:
        json.dump(manifest, f)


class OutOfRange:
    """Pickles as a tensor whose view runs past its storage (as a damaged file would)."""

    def __init__(self, storage):
        self.storage = storage

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, (self.storage, 2, (64,), (1,), False, collections.OrderedDict()))


def from_safetensors(src, dst):
    """The tensors of a safetensors file (parsed by hand: torch 1.13 has no reader) saved by torch.save."""
    import struct
    kinds = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
             "I64": torch.int64, "I32": torch.int32, "U8": torch.uint8, "BOOL": torch.bool}
    with open(src, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    sd = collections.OrderedDict()
    for name, e in sorted(header.items()):
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        t = torch.frombuffer(bytearray(data[b:end]), dtype=kinds[e["dtype"]]) if end > b else torch.empty(0, dtype=kinds[e["dtype"]])
        sd[name] = t.reshape(e["shape"]).clone()
    torch.save(sd, dst)


def main():
    if sys.argv[1] == "--from-safetensors":
        from_safetensors(sys.argv[2], sys.argv[3])
        return
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    g = torch.Generator().manual_seed(7)
    base = torch.randn(3, 5, generator=g, dtype=torch.float64) * 40
    dtypes = collections.OrderedDict()
    for name, dt in DTYPES.items():
        dtypes[f"t.{name.lower()}"] = (base > 0) if dt == torch.bool else base.to(dt)
    dtypes["t.scalar"] = torch.tensor(2.5)
    dtypes["t.empty"] = torch.zeros(0, 4)
    save(out, "dtypes.pt", dtypes, dtypes)

    big = torch.arange(60, dtype=torch.float32).reshape(6, 10)
    module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    views = collections.OrderedDict()
    views["transposed"] = big.t()
    views["rows"] = big[2:5]
    views["cols"] = big[:, 3:7]
    views["every_other"] = big[::2, 1::3]
    views["shared_a"] = big[1]
    views["expanded"] = torch.arange(3, dtype=torch.float32).unsqueeze(0).expand(4, 3)
    views["param"] = torch.nn.Parameter(torch.linspace(-1, 1, 7))
    for k, v in module.state_dict().items():
        views["module." + k] = v
    save(out, "views.pt", views, views)
    sd = module.state_dict()  # an OrderedDict with its _metadata attribute
    save(out, "module.pt", sd, sd)

    legacy = collections.OrderedDict([("a", big[1:3, 2:]), ("b", big), ("h", base.to(torch.float16)), ("i", torch.arange(5))])
    save(out, "legacy.pt", legacy, legacy, _use_new_zipfile_serialization=False)

    te = collections.OrderedDict()
    te["blocks.0.projections.weight"] = base.to(torch.bfloat16)
    te["blocks.0.projections._extra_state"] = io.BytesIO(b"")
    te["blocks.1.projections._extra_state"] = io.BytesIO(b"\x01\x02fp8")
    te["norm.scale"] = torch.ones(5)
    save(out, "extra_state.pt", te, {k: v for k, v in te.items() if torch.is_tensor(v)})

    ckpt = {"epoch": 3, "global_step": 1200, "state_dict": collections.OrderedDict([("w", base.float()), ("b", torch.zeros(3))]),
            "optimizer_states": [{"lr": 0.001}], "pytorch-lightning_version": "1.9.0"}
    save(out, "train.ckpt", ckpt, ckpt["state_dict"])

    with zipfile.ZipFile(os.path.join(out, "views.pt")) as z:  # the bare pickle, for the prefix test
        pkl = [n for n in z.namelist() if n.endswith("/data.pkl")][0]
        with open(os.path.join(out, "views.data.pkl"), "wb") as f:
            f.write(z.read(pkl))

    import argparse
    save(out, "bad_global.pt", {"w": base.float(), "args": argparse.Namespace(lr=0.1)}, {})
    save(out, "out_of_range.pt", {"w": OutOfRange(torch.arange(10, dtype=torch.float32).storage())}, {})


if __name__ == "__main__":
    main()
