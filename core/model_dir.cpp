#include "core/model_dir.h"

#include "core/error.h"
#include "core/torch_checkpoint.h"

#include <algorithm>

namespace longseq {

namespace fs = std::filesystem;

namespace {

bool is_config_name(const fs::path& name) { return name == "config.json" || name == "config.yml" || name == "config.yaml"; }

fs::path folder_of(const fs::path& path) {
  return fs::is_regular_file(path) && is_config_name(path.filename()) ? path.parent_path() : path;
}

// config.json, or a released YAML config (Evo 2's) when the folder has no config.json.
fs::path config_of(const fs::path& dir) {
  for (const char* name : {"config.json", "config.yml", "config.yaml"})
    if (fs::exists(dir / name)) return dir / name;
  return dir / "config.json";
}

bool checkpoint_extension(const fs::path& p) {
  const std::string e = p.extension().string();
  return e == ".pt" || e == ".pth" || e == ".bin" || e == ".ckpt";
}

// The weights of a model folder, by the convention's names first; empty when none is there. Throws
// when several unnamed checkpoints leave the choice open.
fs::path weights_of(const fs::path& dir) {
  for (const char* name : {"model.safetensors", "pytorch_model.bin", "model.pt"})
    if (fs::exists(dir / name) || fs::exists(dir / (std::string(name) + ".part0"))) return dir / name;
  std::vector<fs::path> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    fs::path p = e.path();
    if (p.extension() == ".part0") p = p.parent_path() / p.stem();
    if (checkpoint_extension(p) && std::find(found.begin(), found.end(), p) == found.end()) found.push_back(p);
  }
  if (found.size() > 1) {
    std::sort(found.begin(), found.end());
    fail("{}: several checkpoints ({}, {}, ...): keep one, or name it model.safetensors / model.pt", dir.string(),
         found[0].filename().string(), found[1].filename().string());
  }
  return found.empty() ? fs::path() : found[0];
}

}  // namespace

std::vector<fs::path> ModelDir::files(const fs::path& path) {
  const auto dir = folder_of(path);
  std::vector<fs::path> out = {config_of(dir)};
  fs::path w = dir / "model.safetensors";
  try {
    if (fs::is_directory(dir)) w = weights_of(dir);
  } catch (const Error&) {
  }
  if (!w.empty())
    for (const auto& p : torch_checkpoint_parts(w)) out.push_back(p);
  return out;
}

ModelDir ModelDir::open(const fs::path& path) {
  const fs::path dir = folder_of(path);
  if (!fs::is_directory(dir)) fail("{}: not a model directory (expected a folder with config.json and model.safetensors)", path.string());
  const fs::path config = config_of(dir);
  if (!fs::exists(config)) fail("{}: no config.json (a model folder holds config.json + model.safetensors)", dir.string());
  const fs::path weights = weights_of(dir);
  if (weights.empty()) {
    if (fs::exists(dir / "model.safetensors.index.json"))
      fail("{}: sharded safetensors checkpoints are not supported yet (merge the shards into one model.safetensors)", dir.string());
    fail("{}: no weights (a model folder holds config.json + model.safetensors, or a PyTorch checkpoint such as pytorch_model.bin)",
         dir.string());
  }
  return ModelDir{dir, Config::load(config), WeightFile::open(weights)};
}

}  // namespace longseq
