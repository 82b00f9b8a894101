// A model family is one description that the whole toolkit dispatches through: how to recognise its
// config.json, summarise it for `info`, load, create (from `init`/`train` flags or a config), save,
// train and move it to a device. Every family is listed once in core/families/registry.cpp (as
// llama.cpp lists its architectures in one table); commands, the trainer and the scorers call the
// registry functions below and never name a family, so adding one edits no command.
// A family implements what it supports and leaves the rest to the defaults, which refuse with one
// line naming the family and what to use instead.
#pragma once

#include "core/config.h"
#include "core/model_dir.h"
#include "core/models/layer_model.h"
#include "core/models/lm.h"
#include "core/models/summary.h"
#include "core/nn/layers.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace longseq {

class DeviceOps;
namespace train {
template <class T>
class GradModel;
}

// One architecture flag of `init` and `train` (--key-with-dashes), shared by the families that read
// it: one value, one default and one range for all of them.
struct ArchOption {
  std::string key;   // config-style name, e.g. "d_state"
  std::string help;  // what it sets, without the family names (the registry adds them)
  int64_t fallback = 0, lo = 0, hi = 0;
};
// Values of the architecture flags by key (every option of every family, defaults filled in).
using ArchValues = std::map<std::string, int64_t>;

class Family {
 public:
  virtual ~Family() = default;
  // As in `--family` and LanguageModel::family().
  virtual std::string name() const = 0;
  // For messages and --help (the architecture's usual name).
  virtual std::string title() const = 0;
  // True when config.json describes a model of this family (in any of its released formats).
  virtual bool recognizes(const Config& config) const = 0;
  // Fills format, hyperparameters, memory estimate and notes (the name and counts are the registry's).
  virtual void summarize(const ModelDir& dir, ModelSummary& summary) const = 0;
  // Stored tensors that are buffers, not parameters (counted apart by `info`).
  virtual bool is_buffer(const std::string& tensor_name) const;
  // The model for inference on the CPU. Throws naming the file and tensor for bad weights.
  virtual std::unique_ptr<LanguageModel> load(const ModelDir& dir) const = 0;

  // The architecture flags this family reads (the shared ones included).
  virtual std::vector<ArchOption> arch_options() const;
  // config.json of a new model from the flags; train_length > 0 is the window it will be trained
  // on (a family with a fixed longest input makes room for it).
  virtual nlohmann::json new_config(const ArchValues& values, int64_t train_length) const;
  // A new model with the family's reference initialisation, deterministic in `seed`.
  virtual std::unique_ptr<LanguageModel> random(const Config& config, uint64_t seed) const;
  // The same with the weights a released bf16 checkpoint keeps in bf16 rounded to bf16 after the
  // initialisation and held so (train::WeightSource::keep_bf16): a model of a released shape at the
  // memory it loads in, for benchmarks. The default is random() (a family without bf16 weights).
  virtual std::unique_ptr<LanguageModel> random_as_released(const Config& config, uint64_t seed) const { return random(config, seed); }
  // Writes config.json + model.safetensors (released names), each atomically; `model` is of this
  // family (LanguageModel::family() == name()).
  virtual void save(const LanguageModel& model, const std::filesystem::path& dir) const;

  // Trainable copies of a loaded or new model of this family (float trains; double is for the
  // finite-difference checks).
  virtual std::unique_ptr<train::GradModel<float>> trainable_f32(const LanguageModel& model) const;
  virtual std::unique_ptr<train::GradModel<double>> trainable_f64(const LanguageModel& model) const;

  // The model on a device; `model` is of this family and `ops` shared with the result.
  virtual std::unique_ptr<LanguageModel> on_device(std::shared_ptr<const LanguageModel> model,
                                                   std::shared_ptr<DeviceOps> ops) const;
  // What runs on a device, for --help ("" when nothing), e.g. "inference and training".
  virtual std::string device_support() const;
};

// What every language-model family of layers shares around its blocks: a token embedding, a final
// norm and an LM head (tied to the embedding, or lm_head.weight).
struct LmFrame {
  std::string family, embedding, final_norm;  // the family's name, the embedding tensor, the final norm's prefix
  int64_t d_model = 0, n_layer = 0;
  bool tied = true, rms = false;  // rms: the final norm is an RMSNorm (else a LayerNorm)
  bool eps_outside = false;       // the RMSNorm adds eps to the root (StripedHyena)
  std::string norm_weight = "weight";  // the final norm's scale: <final_norm><norm_weight>
  double final_eps = 1e-5;
  ops::NormKind final_norm_kind() const {
    return !rms ? ops::NormKind::layer : eps_outside ? ops::NormKind::rms_eps_outside : ops::NormKind::rms;
  }
  // Non-empty (each token's complement): reverse-complement parameter sharing (Caduceus-PS). The
  // stream is 2 d_model wide, one half per strand; the tied token table (GradModelSpec::complement)
  // and the final norm (an RC wrapper) serve both halves.
  std::vector<int64_t> rc_complement;
  // See train::GradModelSpec::file_layout.
  std::function<Tensor(const std::string&, Tensor, bool)> file_layout;
  int64_t stream_width() const { return rc_complement.empty() ? d_model : 2 * d_model; }
};
// The frame's tensor table in file order: the embedding (V rows), block(i)'s declarations for each
// block, the final norm, and an untied head; embedding and head start N(0, 0.02^2).
nn::ParamDecls lm_declarations(const LmFrame& frame, int64_t V, const std::function<nn::ParamDecls(int64_t)>& block);
// The parts' declarations one after another.
inline nn::ParamDecls concat(std::initializer_list<nn::ParamDecls> parts) {
  nn::ParamDecls all;
  for (const nn::ParamDecls& p : parts) all.insert(all.end(), p.begin(), p.end());
  return all;
}

// A family described by its layers (core/nn/layers.h): its models are LayerLanguageModels
// (core/models/layer_model.h) whose layers live in a GradModel<float>, so saving, the trainable
// copies and the device model come from one function of the family (Derived):
//   template <class T> static std::unique_ptr<train::GradModel<T>> build(const nlohmann::json& config,
//                                                                         train::WeightSource weights);
// (tensors under the family's names, or its declarations and a seed; config as save() writes it).
template <class Derived>
class LayerFamily : public Family {
 public:
  void save(const LanguageModel& model, const std::filesystem::path& dir) const override { of(model).save(dir); }
  // A model with bf16-kept weights (WeightSource::keep_bf16) trains, and runs on a device, as a copy
  // with every weight in float.
  std::unique_ptr<train::GradModel<float>> trainable_f32(const LanguageModel& model) const override {
    return of(model).layers().holds_bf16() ? rebuilt<float>(model) : of(model).layers().clone();
  }
  std::unique_ptr<train::GradModel<double>> trainable_f64(const LanguageModel& model) const override { return rebuilt<double>(model); }
  std::unique_ptr<LanguageModel> on_device(std::shared_ptr<const LanguageModel> model, std::shared_ptr<DeviceOps> ops) const override {
    const LayerLanguageModel& m = of(*model);
    if (!m.layers().holds_bf16()) return m.on_device(std::move(ops));
    return LayerLanguageModel(rebuilt<float>(m), m.max_length()).on_device(std::move(ops));
  }
  std::string device_support() const override { return "inference and training"; }

 protected:
  // Throws std::bad_cast for a model of another family (a caller bug).
  static const LayerLanguageModel& of(const LanguageModel& model) { return dynamic_cast<const LayerLanguageModel&>(model); }
  // The model's layers built anew in T from its tensors, every weight in T.
  template <class T>
  static std::unique_ptr<train::GradModel<T>> rebuilt(const LanguageModel& model) {
    return Derived::template build<T>(of(model).layers().config_json(), {.tensors = of(model).layers().named_tensors()});
  }
  // The stack of `frame` over `weights` for build(): `block(g, offsets, i)` adds block i's steps, the
  // frame's final norm closes it; the table's buffers are not trained; the LM head is the embedding
  // when tied, else lm_head.weight.
  template <class T, class Block>
  static std::unique_ptr<train::GradModel<T>> layer_stack(const LmFrame& frame, const nlohmann::json& config, train::WeightSource weights,
                                                          const nn::ParamDecls& table, Block&& block) {
    std::vector<std::string> buffers;
    for (const nn::ParamDecl& p : table)
      if (p.buffer) buffers.push_back(p.name);
    auto g = std::make_unique<train::GradModel<T>>(
        train::GradModelSpec{.family = frame.family, .config = config, .d_model = frame.stream_width(), .weights = std::move(weights),
                             .buffers = std::move(buffers), .embedding = frame.embedding,
                             .lm_head = frame.tied ? frame.embedding : "lm_head.weight", .complement = frame.rc_complement,
                             .file_layout = frame.file_layout});
    const nn::OffsetOf off = g->offsets();
    for (int64_t i = 0; i < frame.n_layer; ++i) block(*g, off, i);
    auto final_norm = nn::make_norm<T>(off, frame.final_norm, frame.final_norm_kind(), frame.final_eps, frame.norm_weight);
    g->set_final_norm(frame.rc_complement.empty() ? final_norm : nn::make_rc_wrapper<T>(final_norm, frame.d_model));
    return g;
  }
  // The inference model over `weights` (moved in: held once).
  static std::unique_ptr<LanguageModel> language_model(const nlohmann::json& config, train::WeightSource weights, int64_t max_length) {
    return std::make_unique<LayerLanguageModel>(Derived::template build<float>(config, std::move(weights)), max_length);
  }
};

// Every family, in the registry's order.
const std::vector<const Family*>& families();
// The family whose recognizes() accepts `config`. Throws naming the file, its model_type and the
// families longseq knows.
const Family& family_of(const Config& config);
// The family named `name`. Throws listing the names.
const Family& family_named(const std::string& name);
// The family of a new model when none is named (--family's default).
const Family& default_family();
// The names of the families that can create new models (for --family).
std::vector<std::string> creatable_family_names();

// Every architecture option of every family, merged by key; `help` ends with the families that read
// it. Throws when two families declare one key with different defaults or ranges (a registry bug).
std::vector<ArchOption> all_arch_options();
// For --device's help: which families run what on a device.
std::string device_support_summary();

// Loads config.json + weights as the family's model. Refuses raw-audio classifiers (config key
// "longseq_audio"): their pooling stages run only in the training model (core/train/grad_model.h).
std::unique_ptr<LanguageModel> load_language_model(const ModelDir& dir);
// The same without that check: the backbone that core/train builds its trainable models on.
std::unique_ptr<LanguageModel> load_backbone_model(const ModelDir& dir);
// See Family::summarize; the tensor counts and sizes are filled in here.
ModelSummary summarize_model(const ModelDir& dir);
// A new model of `family` from the architecture flags (see Family::new_config).
std::unique_ptr<LanguageModel> new_model(const std::string& family, const ArchValues& values, int64_t train_length, uint64_t seed);
// A new model with the architecture of a config.json of any family. Throws naming the file.
// as_released: Family::random_as_released.
std::unique_ptr<LanguageModel> new_model_from_config(const std::filesystem::path& config_json, uint64_t seed, bool as_released = false);
// The same from config.json's content (tools and tests).
std::unique_ptr<LanguageModel> new_model_from_json(const nlohmann::json& config, uint64_t seed);
// See Family::save.
void save_model(const LanguageModel& model, const std::filesystem::path& dir);
// The model on `device`: "cpu" returns it as is; "cuda" runs it through make_cuda_ops(). Throws for
// an unknown device, a family without a device path, or no usable device.
std::unique_ptr<LanguageModel> make_device_model(std::unique_ptr<LanguageModel> model, const std::string& device);

}  // namespace longseq
