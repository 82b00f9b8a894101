// The registry: the one list of families, the lookups, and the family-independent steps around
// them (tensor counts for `info`, the audio-model check on load, the device choice). Adding a family
// adds one line to kFamilies (docs/ARCHITECTURE.md, "Add a family").
#include "core/families/family.h"

#include "core/device/ops.h"
#include "core/error.h"
#include "core/random.h"
#include "core/safetensors.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

namespace longseq {

// Defined in the family's own file (core/families/<name>.cpp).
const Family& mamba_family();
const Family& hyenadna_family();
const Family& caduceus_family();
const Family& hybrid_family();
const Family& striped_hyena_family();

namespace {

// In order of precedence when two families could read one config.json.
std::vector<const Family*> make_list() {
  return {&hybrid_family(), &striped_hyena_family(), &caduceus_family(), &hyenadna_family(), &mamba_family()};
}

std::string known_names() {
  std::vector<std::string> names;
  for (const Family* f : families()) names.push_back(f->title());
  return fmt::format("{}", fmt::join(names, ", "));
}

}  // namespace

nn::ParamDecls lm_declarations(const LmFrame& frame, int64_t V, const std::function<nn::ParamDecls(int64_t)>& block) {
  const auto normal_rows = [&](const std::string& name) {
    return nn::ParamDecl{name, {V, frame.d_model}, false, [n = V * frame.d_model](Rng& r, float* out) {
                           for (int64_t i = 0; i < n; ++i) out[i] = float(0.02 * r.normal());
                         }};
  };
  nn::ParamDecls p{normal_rows(frame.embedding)};
  for (int64_t i = 0; i < frame.n_layer; ++i) p = concat({std::move(p), block(i)});
  p = concat({std::move(p), nn::norm_params(frame.final_norm, frame.d_model, frame.rms, frame.norm_weight)});
  if (!frame.tied) p.push_back(normal_rows("lm_head.weight"));
  return p;
}

const std::vector<const Family*>& families() {
  static const std::vector<const Family*> list = make_list();
  return list;
}

const Family& family_of(const Config& config) {
  for (const Family* f : families())
    if (f->recognizes(config)) return *f;
  fail("{}: unknown model family (model_type '{}'); longseq reads {}", config.source(), config.get_string("model_type", ""),
       known_names());
}

const Family& family_named(const std::string& name) {
  for (const Family* f : families())
    if (f->name() == name) return *f;
  std::vector<std::string> names;
  for (const Family* f : families()) names.push_back(f->name());
  fail("unknown model family '{}'; use one of {}", name, fmt::join(names, ", "));
}

const Family& default_family() { return mamba_family(); }

std::vector<std::string> creatable_family_names() {
  std::vector<std::string> names;
  for (const Family* f : families())
    if (!f->arch_options().empty()) names.push_back(f->name());
  return names;
}

std::vector<ArchOption> all_arch_options() {
  std::vector<ArchOption> merged;
  std::vector<std::vector<std::string>> users;
  for (const Family* f : families())
    for (const ArchOption& o : f->arch_options()) {
      auto it = std::find_if(merged.begin(), merged.end(), [&](const ArchOption& m) { return m.key == o.key; });
      if (it == merged.end()) {
        merged.push_back(o);
        users.push_back({f->name()});
        continue;
      }
      LS_CHECK(it->fallback == o.fallback && it->lo == o.lo && it->hi == o.hi,
               "architecture option '{}' is declared differently by two families (registry bug)", o.key);
      users[size_t(it - merged.begin())].push_back(f->name());
    }
  const size_t creatable = creatable_family_names().size();
  for (size_t i = 0; i < merged.size(); ++i)
    if (users[i].size() < creatable) merged[i].help += fmt::format(" [{}]", fmt::join(users[i], ", "));
  return merged;
}

std::string device_support_summary() {
  std::vector<std::pair<std::string, std::vector<std::string>>> groups;  // what runs -> the families it runs for
  for (const Family* f : families()) {
    const std::string s = f->device_support();
    if (s.empty()) continue;
    auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == s; });
    if (it == groups.end()) it = groups.insert(groups.end(), {s, {}});
    it->second.push_back(f->title());
  }
  std::vector<std::string> parts;
  for (const auto& [what, names] : groups) parts.push_back(fmt::format("{} for {}", what, fmt::join(names, " and ")));
  return parts.empty() ? "nothing yet" : fmt::format("{}", fmt::join(parts, "; "));
}

std::unique_ptr<LanguageModel> load_language_model(const ModelDir& dir) {
  LS_CHECK(!dir.config.has("longseq_audio"), "{}: this is a raw-audio classifier (longseq_audio); run it with `longseq classify-audio`",
           dir.config.source());
  return load_backbone_model(dir);
}

std::unique_ptr<LanguageModel> load_backbone_model(const ModelDir& dir) { return family_of(dir.config).load(dir); }

ModelSummary summarize_model(const ModelDir& dir) {
  const Family& family = family_of(dir.config);
  ModelSummary s;
  s.family = family.name();
  family.summarize(dir, s);
  for (const auto& t : dir.weights.tensors()) {
    s.weight_bytes += double(t.end - t.begin);
    (family.is_buffer(t.name) ? s.buffer_elements : s.parameters) += shape_numel(t.shape);
  }
  return s;
}

std::unique_ptr<LanguageModel> new_model(const std::string& family, const ArchValues& values, int64_t train_length, uint64_t seed) {
  const Family& f = family_named(family);
  const nlohmann::json json = f.new_config(values, train_length);
  return f.random(Config::parse(json.dump(), fmt::format("the {} architecture flags", family)), seed);
}

std::unique_ptr<LanguageModel> new_model_from_config(const std::filesystem::path& path, uint64_t seed, bool as_released) {
  const Config config = Config::load(path);
  const Family& family = family_of(config);
  return as_released ? family.random_as_released(config, seed) : family.random(config, seed);
}

std::unique_ptr<LanguageModel> new_model_from_json(const nlohmann::json& config_json, uint64_t seed) {
  const Config config = Config::parse(config_json.dump(), "config");
  return family_of(config).random(config, seed);
}

void save_model(const LanguageModel& model, const std::filesystem::path& dir) { family_named(model.family()).save(model, dir); }

std::unique_ptr<LanguageModel> make_device_model(std::unique_ptr<LanguageModel> model, const std::string& device) {
  if (device == "cpu") return model;
  LS_CHECK(device == "cuda", "unknown device '{}'; use cpu or cuda", device);
  const Family& family = family_named(model->family());
  LS_CHECK(!family.device_support().empty(), "--device cuda: the {} family has no device path; use --device cpu", model->family());
  std::shared_ptr<DeviceOps> ops(make_cuda_ops());  // before the model changes hands: this may throw
  return family.on_device(std::shared_ptr<const LanguageModel>(std::move(model)), std::move(ops));
}

// Defaults: what a family does not implement is refused in one line.

bool Family::is_buffer(const std::string&) const { return false; }

std::vector<ArchOption> Family::arch_options() const { return {}; }

nlohmann::json Family::new_config(const ArchValues&, int64_t) const {
  fail("{} models cannot be created by longseq yet; start from a released model folder", title());
}

std::unique_ptr<LanguageModel> Family::random(const Config& config, uint64_t) const {
  fail("{}: {} models cannot be created by longseq yet; start from a released model folder", config.source(), title());
}

void Family::save(const LanguageModel&, const std::filesystem::path& dir) const {
  fail("{}: {} models cannot be written by longseq yet", dir.string(), title());
}

std::unique_ptr<train::GradModel<float>> Family::trainable_f32(const LanguageModel&) const {
  fail("training is not implemented for {} models yet", title());
}

std::unique_ptr<train::GradModel<double>> Family::trainable_f64(const LanguageModel&) const {
  fail("training is not implemented for {} models yet", title());
}

std::unique_ptr<LanguageModel> Family::on_device(std::shared_ptr<const LanguageModel>, std::shared_ptr<DeviceOps>) const {
  fail("--device cuda: {} models have no device path yet; use --device cpu", title());
}

std::string Family::device_support() const { return ""; }

}  // namespace longseq
