// `longseq convert`: a model's weights from a PyTorch checkpoint (or safetensors) to safetensors, with
// the same names and, by default, the same dtypes and bytes. Every command already reads .pt/.bin
// folders in place; converting once saves re-reading the pickle and gives a file other tools map.
// A file converts to a file; a model folder converts to a folder (config and the other small text
// files copied beside the new model.safetensors). Outputs are written whole or not at all.
#include "apps/longseq/commands.h"
#include "core/error.h"
#include "core/fileio.h"
#include "core/model_dir.h"
#include "core/torch_checkpoint.h"
#include "core/weight_file.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <optional>

namespace longseq::cli {

namespace {

namespace fs = std::filesystem;

struct ConvertArgs {
  std::string input, output, dtype = "keep";
};

std::optional<DType> target_dtype(const std::string& name) {
  if (name == "f32") return DType::F32;
  if (name == "bf16") return DType::BF16;
  if (name == "f16") return DType::F16;
  return std::nullopt;  // keep
}

// The tensors to write: floating-point ones checked finite (and converted when asked), integer ones
// (buffers such as Caduceus's complement_map) as stored.
std::vector<std::pair<std::string, Tensor>> converted(const WeightFile& w, const std::optional<DType>& dtype) {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const TensorInfo& t : w.tensors()) {
    Tensor v = w.view(t.name);
    if (dtype_is_float(t.dtype)) {
      (void)finite_f32(v, w.path(), t.name);  // throws naming a NaN or infinity
      if (dtype && *dtype != t.dtype) v = v.to(*dtype);
    }
    out.emplace_back(t.name, std::move(v));
  }
  return out;
}

void write(const WeightFile& w, const fs::path& out, const ConvertArgs& a) {
  write_safetensors(out, converted(w, target_dtype(a.dtype)),
                    {{"format", "pt"}, {"producer", "longseq " LONGSEQ_VERSION}, {"converted_from", w.path().filename().string()}});
  spdlog::info("convert: {} tensors from {} ({}) to {}{}", w.tensors().size(), w.path().string(), w.format(), out.string(),
               w.skipped().empty() ? "" : fmt::format("; {} non-tensor entries skipped", w.skipped().size()));
}

void run(const ConvertArgs& a) {
  if (fs::is_directory(a.input)) {
    const ModelDir m = ModelDir::open(a.input);
    const fs::path out(a.output);
    std::vector<fs::path> inputs = ModelDir::files(a.input);
    check_output_folder(out, inputs);
    const bool created = !fs::exists(out);
    fs::create_directories(out);
    try {
      check_output_file(out / "model.safetensors", inputs);
      write(m.weights, out / "model.safetensors", a);  // first: the step that refuses a NaN or a bad file
      // The model's small text files (config, tokenizer) travel with it; the weights are converted.
      for (const auto& e : fs::directory_iterator(m.dir)) {
        const std::string ext = e.path().extension().string();
        const bool text = ext == ".json" || ext == ".yml" || ext == ".yaml" || ext == ".txt";
        if (e.is_regular_file() && text && e.path() != m.weights.path()) {
          check_output_file(out / e.path().filename(), inputs);
          write_text_atomic(out / e.path().filename(), read_text_file(e.path()));
        }
      }
    } catch (...) {
      std::error_code ec;
      if (created) fs::remove_all(out, ec);  // a folder this run made is complete or absent
      throw;
    }
    return;
  }
  LS_CHECK(a.output.ends_with(".safetensors"), "-o {}: the output of a file is a .safetensors file (or give a model folder for a folder)",
           a.output);
  check_output_file(a.output, torch_checkpoint_parts(a.input));
  write(WeightFile::open(a.input), a.output, a);
}

}  // namespace

void add_convert(CLI::App& app) {
  auto a = std::make_shared<ConvertArgs>();
  auto* cmd = app.add_subcommand("convert", "Convert weights (a PyTorch checkpoint, or a model folder holding one) to safetensors");
  cmd->footer(
      "Reads torch.save files natively (zip and legacy formats, state dicts or training checkpoints with a 'state_dict' or 'model' "
      "entry, files split in .part0, .part1, ...) without running their pickle: a checkpoint that asks for any Python object "
      "beyond tensors and containers is refused. Names are kept; --dtype keep (default) keeps every tensor's dtype and bytes. "
      "A folder converts to a folder: model.safetensors plus its .json/.yml/.txt files.");
  cmd->add_option("input", a->input, "Checkpoint file (.pt, .pth, .bin, .ckpt, .safetensors) or model folder")->required();
  cmd->add_option("output", a->output, "OUT.safetensors, or an output folder for a model folder")->required();
  cmd->add_option("--dtype", a->dtype, "keep, f32, bf16 or f16 (floating-point tensors; integer buffers are kept)")
      ->check(CLI::IsMember({"keep", "f32", "bf16", "f16"}));
  cmd->callback([a] { run(*a); });
}

}  // namespace longseq::cli
