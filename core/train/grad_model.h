// A trainable copy of a language model: every tensor of the checkpoint in one flat array of T under
// its released name (so gradients, optimizer state and checkpoints share one layout and one naming),
// plus forward + backward of one sequence. float trains; double is for the finite-difference checks.
// Built from a loaded or freshly initialised model by its family (Family::trainable_f32) and
// written back in the same config.json + model.safetensors form the loaders read.
#pragma once

#include "core/memory.h"
#include "core/models/lm.h"
#include "core/nn/layers.h"
#include "core/mat.h"

#include <nlohmann/json.hpp>
#include "core/tensor.h"

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace longseq {
class DeviceOps;
}

namespace longseq::train {

struct ParamInfo {
  std::string name;  // released name, e.g. backbone.layers.0.mixer.A_log
  Shape shape;
  int64_t offset = 0, numel = 0;
  bool trainable = true;  // false for buffers (fixed positional grids, decay rates)
  bool decay = true;      // AdamW weight decay applies (not to biases, norms, A_log, D, freq, pos_emb.z)
  bool bf16 = false;      // kept in bf16 outside the flat table: offset is nn::Params::kBf16 + its index
};

class ParamTable {
 public:
  // Appends a tensor; the decay group follows the originals' conventions from its name and shape. A
  // bf16 one takes no room in the flat table (ParamInfo::bf16).
  int64_t add(const std::string& name, const Shape& shape, bool trainable, bool bf16 = false);
  int64_t bf16_count() const { return bf16_count_; }
  const std::vector<ParamInfo>& list() const { return list_; }
  int64_t size() const { return size_; }
  static constexpr int64_t kPadTo = 16;  // offsets are multiples of this (64 bytes of float)
  // Throws naming the tensor when absent.
  const ParamInfo& find(const std::string& name) const;
  bool has(const std::string& name) const;

 private:
  std::vector<ParamInfo> list_;
  int64_t size_ = 0, bf16_count_ = 0;
};

// What the model predicts from the backbone's final normalised hidden states.
enum class Head {
  LanguageModel,  // next-token logits (L, V) through the LM head
  Classifier,     // mean over positions, then a linear layer to `classes` logits
};

// A raw-waveform model (SaShiMi-style): the input ids are 8-bit mu-law codes of the samples
// (vocabulary 256), and the layers are split evenly into stages, each entered through a down-pool:
// (L, d) viewed as (L/p, p*d), then a linear layer back to d. Stage 0's pool turns samples into
// frames, so the layers never run at the sample rate. Stage 0 reads either the samples' embeddings
// or, with a filterbank front end, `filters` log-power bands of overlapping `frame`-sample frames
// taken every pool[0] samples: an SSM's real decays cannot resonate, so pitch and timbre (periods
// of 2-10 ms) must be resolved before the layers. Stored in config.json as "longseq_audio".
struct AudioSpec {
  int64_t sample_rate = 16000;
  int64_t clip_samples = 32000;  // the length the model is trained and applied on (a multiple of stride())
  std::vector<int64_t> pool;     // down-pooling factor entering each stage, e.g. {16, 4, 4}
  int64_t filters = 0;           // > 0: filterbank front end of this many bands (weights backbone.filterbank.weight)
  int64_t frame = 0;             // the filterbank's frame length in samples (>= pool[0])
  bool learn_filters = false;    // the filterbank is trained too (else it keeps its mel-spaced init)
  bool band_norm = false;        // each band's mean over the window is subtracted (channel normalisation)
  double level_rms = 0;          // > 0: each window is scaled to this RMS before encoding (audio/'s mu_law_window)
  int64_t stride() const;        // samples per final position: the product of pool
  nlohmann::json to_json() const;
  // Throws naming `source` and the field when a value is missing or inconsistent.
  static AudioSpec from_json(const nlohmann::json& j, const std::string& source);
};

// How a family describes its trainable model to GradModel: the tensors (released names; `buffers`
// are kept but not trained), the token embedding and LM head (one name when tied), and the config
// written back by save(). The residual steps, x += op(norm(x)), are added with add_step.
// Where a model's tensors come from: loaded ones (moved in, dropped once copied), or the layers'
// declarations made in place from `seed` (a new model), so that a model is never held twice.
// keep_bf16 (an inference model in float): BF16 tensors are held as they are, outside the flat
// table, and read through nn::Params::matrix; a family passes BF16 only for its ParamDecl::matrix
// weights, and a new model rounds those to bf16 after its initialisation. Half the memory of those
// weights (held in owned memory, the file's pages released), the same results as holding them
// widened (core/ops/linear.cpp). Such a model infers
// only: it trains, and runs on a device, through a copy with every weight in float (the families'
// trainable_f32 and on_device make it).
struct WeightSource {
  std::vector<std::pair<std::string, Tensor>> tensors;
  nn::ParamDecls declarations;  // when tensors is empty
  uint64_t seed = 0;
  bool keep_bf16 = false;
};

struct GradModelSpec {
  std::string family;
  nlohmann::json config;  // config.json as the family writes it
  int64_t d_model = 0;
  WeightSource weights;
  std::vector<std::string> buffers;
  std::string embedding, lm_head;
  // Non-empty: reverse-complement parameter sharing (Caduceus-PS). The embedding tensor is (V,
  // d_model / 2) and the embedding and tied LM head read the (V, d_model) table made from it with
  // each token's complement (ops::rc_token_table).
  std::vector<int64_t> complement;
  // A tensor in the released file's layout from the layers' (to_file) or back (null: the layouts are
  // the same): a family whose loader reorders rows (StripedHyena 2's de-interleaved projections)
  // writes them back as read, and a checkpoint resumes through the inverse.
  std::function<Tensor(const std::string& name, Tensor tensor, bool to_file)> file_layout;
};

template <class T>
class GradModel {
 public:
  explicit GradModel(GradModelSpec spec);  // takes the tensors: pass them by move to hold them once
  ~GradModel();
  // Appends a residual step x += op(norm(x)) to block `block` (blocks in order; audio pooling
  // stages split the blocks evenly), and sets the final norm before the heads.
  void add_step(int64_t block, std::shared_ptr<const nn::Layer<T>> norm, std::shared_ptr<const nn::Layer<T>> op);
  // Appends a step that replaces the stream, x = op(x) (no norm, no residual; e.g. a permutation of
  // the channels).
  void add_map(int64_t block, std::shared_ptr<const nn::Layer<T>> op);
  // A tensor the file keeps as it is, outside the trained table (an integer buffer such as
  // Caduceus's complement_map), written by save() after the table's.
  void add_fixed(std::string name, Tensor tensor) { fixed_.emplace_back(std::move(name), std::move(tensor)); }
  void set_final_norm(std::shared_ptr<const nn::Layer<T>> norm);
  // Offsets of the table's tensors by name (-1: absent), for the family's layer constructors.
  nn::OffsetOf offsets() const;

  const ParamTable& params() const { return table_; }
  // Every tensor starts on a kAlignment boundary (the table pads between them).
  // A tensor of a file this model saved, in the layers' layout (GradModelSpec::file_layout).
  Tensor from_file_layout(const std::string& name, Tensor t) const { return file_layout_ ? file_layout_(name, std::move(t), false) : t; }
  AlignedVector<T>& weights() { return weights_; }
  const AlignedVector<T>& weights() const { return weights_; }
  // The bf16-kept tensors' data (WeightSource::keep_bf16), one pointer per tensor in table order;
  // empty for a model that holds every weight in the flat table.
  const std::vector<const uint16_t*>& bf16_weights() const { return bf16_ptrs_; }
  bool holds_bf16() const { return !bf16_.empty(); }
  // Every parameter, the flat table's and the bf16-kept ones.
  int64_t parameter_count() const;
  Head head() const { return head_; }
  int64_t classes() const { return classes_; }

  // Language modelling: cross-entropy of the logits at every position l with targets[l] >= 0
  // (negative = ignored). Returns the summed loss over counted positions; when `grad` is non-null
  // (size params().size()) adds scale * d(sum)/d(weights) into it.
  double lm_loss(std::span<const int64_t> ids, std::span<const int64_t> targets, double scale, T* grad);
  // Classification: cross-entropy of the pooled logits against `label` (< 0: no loss, e.g. to
  // predict; `logits` receives the class logits). Same gradient contract.
  double class_loss(std::span<const int64_t> ids, int64_t label, double scale, T* grad, std::vector<double>* logits = nullptr);
  // Per-step recomputation in the backward (activation memory of one step instead of all).
  void set_recompute(bool on) { recompute_ = on; }
  // The window length a language model is trained on, saved as config.json's longseq_train_length
  // so that scoring can say when it runs windows the model never saw (0: not recorded).
  void set_train_length(int64_t length) { train_length_ = length; }
  // Runs the backbone's forward and backward on `ops` (null: back to the CPU), in float. Weights and
  // optimizer stay on the host; each sequence uploads the weights and downloads the gradients.
  // Throws when a layer exceeds the device's kernels (e.g. a conv wider than they are built for).
  void set_device(std::shared_ptr<DeviceOps> ops);
  // Activation floats held per input token during a forward + backward (for the docs and --help).
  int64_t activation_floats_per_token() const;

  // Adds a sequence-classification head, `classifier.weight` (classes, d) and `classifier.bias`
  // (classes), zero-initialised; the LM head stays in the table (and the file) but is unused.
  void add_classifier(std::vector<std::string> labels);
  const std::vector<std::string>& labels() const { return labels_; }

  // Turns this model into a raw-waveform model: adds the pooling layers `backbone.pool.<s>.weight`
  // (d, p*d) and `.bias` (d), initialised like torch.nn.Linear from `seed` (and the filterbank
  // front end). Throws for a block count not divisible by the stages, or a vocabulary under 256.
  void set_audio(const AudioSpec& spec, uint64_t seed);
  const std::optional<AudioSpec>& audio() const { return audio_; }
  // Final positions for an input of L tokens (L / stride for audio models).
  int64_t output_length(int64_t L) const { return audio_ ? L / audio_->stride() : L; }

  // Writes config.json (the family's config, plus "longseq_head" for a classifier) and
  // model.safetensors with the released names, each atomically. Loadable by load_grad_model, and by
  // load_language_model (which ignores a classifier head).
  void save(const std::filesystem::path& dir) const;
  nlohmann::json config_json() const { return config_; }
  // An independent copy (weights and activation buffers), one per worker thread.
  std::unique_ptr<GradModel<T>> clone() const;
  std::string family() const { return family_; }
  int64_t d_model() const { return d_model_; }
  int64_t vocab_size() const { return vocab_; }  // LM head rows
  int64_t blocks() const { return blocks_; }
  // True when every layer is causal (core/nn/layers.h: Layer::causal): a next-token model; false for
  // a bidirectional, masked-language one.
  bool causal() const;
  // The structure inference runs through (core/models/layer_model.h): the residual steps in order,
  // the final norm, and the embedding and LM head tensors (offsets in weights()).
  struct Step {
    int64_t block = 0;
    std::shared_ptr<const nn::Layer<T>> norm, op;  // norm null: op reads the stream itself
    bool residual = true;                          // x += op(...), else x = op(...)
  };
  const std::vector<Step>& steps() const { return steps_; }
  const nn::Layer<T>& final_norm() const { return *final_norm_; }
  int64_t embedding_offset() const { return emb_; }
  int64_t lm_head_offset() const { return lm_head_; }
  // True when the embedding and LM head read a table made from the weights (GradModelSpec::complement);
  // token_table() is then that (V, d_model) table for the current weights (host).
  bool derived_token_table() const { return !complement_.empty(); }
  std::vector<T> token_table() const;
  // Copy of a parameter as an F32 tensor, for tests and tools.
  Tensor tensor(const std::string& name) const;
  // Every parameter in table order: F32 copies, and the bf16-kept tensors as they are held (BF16).
  std::vector<std::pair<std::string, Tensor>> named_tensors() const;

 private:
  struct Buffers;  // everything of one pass that lives on the backend (grad_model.cpp)
  GradModel(const GradModel& other);  // for clone(): the buffers are not copied

  // Fills fin_ (output_length(L), d), the final normalised hidden states; the backward starts from
  // dfin_ and adds every parameter's gradient into grad.
  void backbone_forward(std::span<const int64_t> ids);
  void backbone_backward(std::span<const int64_t> ids, T* grad);
  // The pooling stage that step k opens, or -1.
  int64_t stage_opened_by(size_t k) const;
  // Stage s's input width: filterbank bands, or pool[s] rows of the stream.
  int64_t pool_cols(int64_t s) const { return s == 0 && filters_ > 0 ? filters_ : pool_[size_t(s)] * d_model_; }
  // The raw-audio front end on the host: frames -> filter pairs -> log power, (L / hop, filters).
  std::vector<T> filterbank_forward(std::span<const int64_t> ids);
  void filterbank_backward(const T* dbands, int64_t rows, T* grad);
  nn::Params<T> params_for(T* device_grad, T* host_grad);
  // Step st's norm forward of x into the step's saved slots; what its op reads (x without a norm).
  Mat<const T> step_norm_forward(const Step& st, Mat<const T> x, nn::Arena<T>& normed, nn::Arena<T>& saved);
  // The LM head's loss from the final hidden states `fin` (L, d): fills dfin (overwritten) when grad.
  double lm_head_loss(Mat<const T> fin, std::span<const int64_t> targets, double scale, T* grad, Mat<T> dfin);
  // The classifier's loss (mean-pool + linear) from `fin`; fills dfin (overwritten) when grad.
  double classifier_loss(Mat<const T> fin, int64_t label, double scale, T* grad, Mat<T> dfin, std::vector<double>* logits);
  T* g(T* grad, int64_t offset) const { return grad && offset >= 0 ? grad + offset : nullptr; }
  // The token table the embedding reads on the backend (the weights', or the derived one uploaded),
  // and the LM head's on the host; a derived table's gradient is folded back into the embedding's.
  const T* embedding_table(const nn::Params<T>& p);
  const T* head_table() { return derived_token_table() ? table_host_.data() : w(lm_head_); }
  void fold_table_grad(const T* dtable, T* grad) const;
  T* w(int64_t offset) { return offset < 0 ? nullptr : weights_.data() + offset; }
  int64_t off(const std::string& name) const { return table_.has(name) ? table_.find(name).offset : -1; }

  // Holds the data of the table's next bf16 tensor, `name` (BF16; made contiguous).
  void hold_bf16(const std::string& name, Tensor t);

  std::string family_;
  nlohmann::json config_;
  int64_t d_model_ = 0;
  ParamTable table_;
  AlignedVector<T> weights_;
  std::vector<Tensor> bf16_;               // see WeightSource::keep_bf16 (immutable: copies share them)
  std::vector<const uint16_t*> bf16_ptrs_;  // their data
  Head head_ = Head::LanguageModel;
  int64_t classes_ = 0;
  int64_t vocab_ = 0;     // LM head rows (padded vocabulary)
  int64_t emb_ = -1;      // the token embedding
  int64_t lm_head_ = -1;  // the LM head (the embedding's offset when tied)
  std::vector<Step> steps_;
  int64_t blocks_ = 0;
  std::vector<int64_t> complement_;                   // see GradModelSpec::complement
  std::vector<std::pair<std::string, Tensor>> fixed_;  // see add_fixed
  std::function<Tensor(const std::string&, Tensor, bool)> file_layout_;  // see GradModelSpec::file_layout
  std::vector<T> table_host_;                          // the derived token table of the last forward
  std::shared_ptr<const nn::Layer<T>> final_norm_;
  std::vector<T> fin_, dfin_;
  bool recompute_ = false;
  int64_t train_length_ = 0;
  std::vector<std::string> labels_;
  std::optional<AudioSpec> audio_;
  std::vector<int64_t> pool_, pool_w_, pool_b_;  // audio models: factor and parameter offsets per stage
  int64_t fb_w_ = -1, filters_ = 0, frame_ = 0;  // filterbank front end: weight offset, bands, frame length
  bool learn_filters_ = false, band_norm_ = false;
  std::vector<T> frames_, fb_y_;  // the filterbank's input frames (L/hop, frame) and filter outputs (L/hop, 2 filters)
  std::vector<int64_t> rows_;     // stream rows entering each step (pooling shortens them), and after the last
  std::shared_ptr<DeviceOps> ops_;
  std::shared_ptr<nn::Backend<T>> backend_;
  std::unique_ptr<Buffers> buf_;
};

// Class probabilities (softmax of the classifier's logits) for one input; the model must have a
// classifier head. Not const: the model keeps its activations (use one clone per thread).
std::vector<double> class_probabilities(GradModel<float>& model, std::span<const int64_t> ids);

// A trainable model from a loaded one (through its family, core/families/family.h; a classifier
// head in config.json is restored with its weights). Throws for families that cannot be trained.
template <class T>
std::unique_ptr<GradModel<T>> make_grad_model(const LanguageModel& model, const ModelDir* dir = nullptr);
// Loads config.json + model.safetensors (a checkpoint written by save(), or a released model).
template <class T>
std::unique_ptr<GradModel<T>> load_grad_model(const std::filesystem::path& dir);

}  // namespace longseq::train
