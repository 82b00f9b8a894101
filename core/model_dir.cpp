#include "core/model_dir.h"

#include "core/error.h"

namespace longseq {

namespace {
std::filesystem::path folder_of(const std::filesystem::path& path) {
  return std::filesystem::is_regular_file(path) && path.filename() == "config.json" ? path.parent_path() : path;
}
}  // namespace

std::vector<std::filesystem::path> ModelDir::files(const std::filesystem::path& path) {
  const auto dir = folder_of(path);
  return {dir / "config.json", dir / "model.safetensors"};
}

ModelDir ModelDir::open(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  const fs::path dir = folder_of(path);
  if (!fs::is_directory(dir)) fail("{}: not a model directory (expected a folder with config.json and model.safetensors)", path.string());
  if (!fs::exists(dir / "config.json")) fail("{}: no config.json (a model folder holds config.json + model.safetensors)", dir.string());
  if (!fs::exists(dir / "model.safetensors")) {
    if (fs::exists(dir / "model.safetensors.index.json"))
      fail("{}: sharded safetensors checkpoints are not supported yet (merge the shards into one model.safetensors)", dir.string());
    if (fs::exists(dir / "pytorch_model.bin"))
      fail("{}: only pytorch_model.bin found; PyTorch pickle checkpoints are not supported yet (convert to model.safetensors)",
           dir.string());
    fail("{}: no model.safetensors (a model folder holds config.json + model.safetensors)", dir.string());
  }
  return ModelDir{dir, Config::load(dir / "config.json"), SafetensorsFile::open(dir / "model.safetensors")};
}

}  // namespace longseq
