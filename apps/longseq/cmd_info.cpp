// `longseq info MODEL_DIR`: what a model is before running it (family, hyperparameters, parameter
// count, tensor table, memory per 1k tokens), in plain text or JSON.
#include "apps/longseq/commands.h"
#include "core/backend.h"
#include "core/families/family.h"
#include "core/threads.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <iostream>

namespace longseq::cli {

namespace {

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  return fmt::format("{:.{}f} {}", b, u ? 2 : 0, units[u]);
}

std::string group_thousands(int64_t v) {
  std::string s = std::to_string(v), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return out;
}

// "layers.2" before "layers.10": numbers inside names compare by value.
bool natural_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) && std::isdigit(static_cast<unsigned char>(b[j]))) {
      size_t ie = i, je = j;
      while (ie < a.size() && std::isdigit(static_cast<unsigned char>(a[ie]))) ++ie;
      while (je < b.size() && std::isdigit(static_cast<unsigned char>(b[je]))) ++je;
      const auto na = std::stoull(a.substr(i, ie - i)), nb = std::stoull(b.substr(j, je - j));
      if (na != nb) return na < nb;
      i = ie, j = je;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i, ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

std::vector<TensorInfo> sorted_tensors(const WeightFile& f) {
  std::vector<TensorInfo> v = f.tensors();
  std::sort(v.begin(), v.end(), [](const TensorInfo& a, const TensorInfo& b) { return natural_less(a.name, b.name); });
  return v;
}

void print_text(const ModelDir& m, const ModelSummary& s, bool tensors) {
  fmt::print("model      {}\n", m.dir.string());
  fmt::print("family     {} ({} format)\n", s.family, s.format);
  fmt::print("weights    {} ({})\n", m.weights.path().filename().string(), m.weights.format());
  if (!m.weights.skipped().empty())
    fmt::print("skipped    {} checkpoint entries that are not tensors (e.g. {})\n", m.weights.skipped().size(), m.weights.skipped()[0]);
  fmt::print("config\n");
  for (const auto& [k, v] : s.hyperparameters) fmt::print("  {:<18} {}\n", k, v);
  fmt::print("parameters {} ({} tensors, {} stored)\n", group_thousands(s.parameters), m.weights.tensors().size(),
             human_bytes(s.weight_bytes));
  if (s.buffer_elements) fmt::print("buffers    {} elements (stored, not trained)\n", group_thousands(s.buffer_elements));
  if (s.activation_bytes_per_token > 0)
    fmt::print("memory     {} per 1k tokens ({})\n", human_bytes(1000 * s.activation_bytes_per_token), s.memory_note);
  for (const auto& n : s.notes) fmt::print("note       {}\n", n);
  if (!tensors) return;
  fmt::print("\n{:<72} {:<5} {}\n", "tensor", "dtype", "shape");
  for (const auto& t : sorted_tensors(m.weights))
    fmt::print("{:<72} {:<5} {}\n", t.name, dtype_name(t.dtype), shape_str(t.shape));
}

void print_json(const ModelDir& m, const ModelSummary& s) {
  nlohmann::ordered_json j;
  j["model"] = m.dir.string();
  j["family"] = s.family;
  j["format"] = s.format;
  j["weights"] = {{"file", m.weights.path().filename().string()}, {"format", m.weights.format()}, {"skipped", m.weights.skipped()}};
  for (const auto& [k, v] : s.hyperparameters) j["config"][k] = v;
  j["parameters"] = s.parameters;
  j["buffer_elements"] = s.buffer_elements;
  j["weight_bytes"] = s.weight_bytes;
  j["activation_bytes_per_1k_tokens"] = 1000 * s.activation_bytes_per_token;
  j["notes"] = s.notes;
  for (const auto& t : sorted_tensors(m.weights))
    j["tensors"].push_back({{"name", t.name}, {"dtype", std::string(dtype_name(t.dtype))}, {"shape", t.shape}});
  std::cout << j.dump(2) << "\n";
}

}  // namespace

void add_info(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "Describe a model directory (config.json + model.safetensors or a PyTorch checkpoint)");
  auto model = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  auto no_tensors = std::make_shared<bool>(false);
  cmd->add_option("model", *model, "Model directory")->required();
  cmd->add_flag("--json", *json, "Print JSON instead of text");
  cmd->add_flag("--no-tensors", *no_tensors, "Leave out the tensor table");
  cmd->callback([=] {
    const ModelDir m = ModelDir::open(*model);
    const ModelSummary s = summarize_model(m);
    if (*json)
      print_json(m, s);
    else
      print_text(m, s, !*no_tensors);
  });
}

}  // namespace longseq::cli
