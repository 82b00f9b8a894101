// PyTorch checkpoints read natively: the zip format torch.save writes since 1.6 (archive/data.pkl
// plus one archive/data/<key> entry per storage, read with minizip) and the legacy format before it
// (back-to-back pickles, then the raw storages). The pickle is read by core/pickle.h, which executes
// nothing; only the globals a state dict is made of are accepted (collections.OrderedDict, the torch
// tensor/parameter rebuild functions, the typed storage classes, and the io.BytesIO of Transformer
// Engine's `_extra_state` entries, which are skipped). Tensors are zero-copy views of the mapped file
// where a storage is stored uncompressed and aligned (torch aligns them to 64 bytes), so a 2 GB
// checkpoint costs no copy; storages shared by several tensors, offsets and strides are kept.
#pragma once

#include "core/tensor.h"

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace longseq {

struct TorchCheckpoint {
  // The state dict's tensors, in its order. Views may be non-contiguous and may share storage.
  std::vector<std::pair<std::string, Tensor>> tensors;
  // Entries that are not tensors, skipped (Transformer Engine `*._extra_state`, plain numbers).
  std::vector<std::string> skipped;
  // Where the state dict was found: "" (the top-level object), or "state_dict" / "model" (the key
  // of a training checkpoint that holds it).
  std::string state_dict_key;
  std::string format;  // "zip" or "legacy"
};

// The parts of a checkpoint: `path` itself, or, when `path` does not exist and `path.part0` does (or
// `path` is a `.part0` file), every `.partN` from 0 up, in order (a file split for upload, as the
// released Evo 2 40b checkpoint is; the parts concatenated are the checkpoint).
std::vector<std::filesystem::path> torch_checkpoint_parts(const std::filesystem::path& path);

// Reads the state dict of a PyTorch checkpoint at `path` (see torch_checkpoint_parts). Throws
// longseq::Error in one line naming the file and what is wrong: not a checkpoint, a damaged zip or
// pickle, a global outside the state-dict set (named; nothing was executed), a storage missing or
// too short for its tensor, a view outside its storage, a big-endian file, an object that holds no
// state dict.
TorchCheckpoint read_torch_checkpoint(const std::filesystem::path& path);

// True when the file starts like a PyTorch checkpoint (a zip, or a pickle) rather than safetensors.
bool looks_like_torch_checkpoint(const std::filesystem::path& path);

}  // namespace longseq
