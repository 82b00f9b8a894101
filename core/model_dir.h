// A model directory in the Hugging Face convention: config.json (or a released config.yml, as Evo 2
// ships) beside the weights, which are
// model.safetensors or a PyTorch checkpoint (pytorch_model.bin, model.pt, or the folder's one
// *.pt / *.pth / *.bin / *.ckpt file, possibly split in .part0, .part1, ...), read by WeightFile.
#pragma once

#include "core/config.h"
#include "core/weight_file.h"

#include <filesystem>
#include <vector>

namespace longseq {

struct ModelDir {
  std::filesystem::path dir;
  Config config;
  WeightFile weights;

  // `path` is the directory (or its config.json). Throws naming the missing file and what to do.
  static ModelDir open(const std::filesystem::path& path);
  // The files a model folder is read from (config.json, the weights and their parts), for checks
  // that an output never replaces them; `path` as for open(). Nothing is read.
  static std::vector<std::filesystem::path> files(const std::filesystem::path& path);
};

}  // namespace longseq
