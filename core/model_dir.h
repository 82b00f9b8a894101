// A model directory in the Hugging Face convention: config.json + model.safetensors.
#pragma once

#include "core/config.h"
#include "core/safetensors.h"

#include <filesystem>
#include <vector>

namespace longseq {

struct ModelDir {
  std::filesystem::path dir;
  Config config;
  SafetensorsFile weights;

  // `path` is the directory (or its config.json). Throws naming the missing file and what to do.
  static ModelDir open(const std::filesystem::path& path);
  // The files a model folder is read from (config.json, model.safetensors), for checks that an output
  // never replaces them; `path` as for open(). Nothing is read.
  static std::vector<std::filesystem::path> files(const std::filesystem::path& path);
};

}  // namespace longseq
