#include "core/train/grad_model.h"

#include "core/error.h"
#include "core/families/family.h"
#include "core/fileio.h"
#include "core/model_dir.h"
#include "core/safetensors.h"

#include <algorithm>
#include <cmath>

namespace longseq::train {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) { return s.ends_with(suffix); }

// Decay only matrices: biases, norm weights, D and freq are vectors; A_log and the implicit
// filters' positional features are excluded by name as the originals do.
bool decays(const std::string& name, const Shape& shape) {
  const int64_t dims = std::count_if(shape.begin(), shape.end(), [](int64_t s) { return s > 1; });
  return dims >= 2 && !ends_with(name, "A_log") && !ends_with(name, "pos_emb.z") && !ends_with(name, ".freq");
}

}  // namespace

int64_t ParamTable::add(const std::string& name, const Shape& shape, bool trainable) {
  LS_CHECK(!has(name), "parameter '{}' listed twice", name);
  ParamInfo p{name, shape, size_, shape_numel(shape), trainable, trainable && decays(name, shape)};
  list_.push_back(p);
  size_ += p.numel;
  return p.offset;
}

bool ParamTable::has(const std::string& name) const {
  return std::any_of(list_.begin(), list_.end(), [&](const ParamInfo& p) { return p.name == name; });
}

const ParamInfo& ParamTable::find(const std::string& name) const {
  for (const auto& p : list_)
    if (p.name == name) return p;
  fail("no parameter named '{}' in this model", name);
}

template <class T>
void GradModel<T>::load_from(const std::vector<std::pair<std::string, Tensor>>& named, const std::vector<std::string>& buffers) {
  for (const auto& [name, t] : named)
    table_.add(name, t.shape(), std::find(buffers.begin(), buffers.end(), name) == buffers.end());
  weights_.assign(size_t(table_.size()), T(0));
  for (const auto& [name, t] : named) {
    const std::vector<float> v = t.contiguous().to_vector();
    std::copy(v.begin(), v.end(), weights_.begin() + table_.find(name).offset);
  }
}

int64_t AudioSpec::stride() const {
  int64_t s = 1;
  for (int64_t p : pool) s *= p;
  return s;
}

nlohmann::json AudioSpec::to_json() const {
  nlohmann::json j = {{"sample_rate", sample_rate}, {"clip_samples", clip_samples}, {"pool", pool}, {"input", "mu-law-8"}};
  if (level_rms > 0) j["level_rms"] = level_rms;
  if (filters > 0) j["frontend"] = {{"type", "filterbank"}, {"filters", filters}, {"frame", frame}, {"learned", learn_filters}, {"band_norm", band_norm}};
  return j;
}

AudioSpec AudioSpec::from_json(const nlohmann::json& j, const std::string& source) {
  AudioSpec a;
  try {
    a.sample_rate = j.at("sample_rate").get<int64_t>();
    a.clip_samples = j.at("clip_samples").get<int64_t>();
    a.pool = j.at("pool").get<std::vector<int64_t>>();
    a.level_rms = j.value("level_rms", 0.0);
    if (j.contains("frontend")) {
      const nlohmann::json& f = j.at("frontend");
      LS_CHECK(f.value("type", "") == "filterbank", "{}: longseq_audio.frontend.type must be 'filterbank'", source);
      a.filters = f.at("filters").get<int64_t>();
      a.frame = f.at("frame").get<int64_t>();
      a.learn_filters = f.value("learned", false);
      a.band_norm = f.value("band_norm", false);
      LS_CHECK(a.filters >= 1 && a.filters <= 1024, "{}: longseq_audio.frontend.filters {} is outside 1..1024", source, a.filters);
    }
  } catch (const nlohmann::json::exception& e) {
    fail("{}: 'longseq_audio' needs sample_rate, clip_samples and pool, and a frontend filters and frame ({})", source, e.what());
  }
  LS_CHECK(j.value("input", "mu-law-8") == "mu-law-8", "{}: longseq_audio.input must be 'mu-law-8'", source);
  LS_CHECK(a.sample_rate >= 1000 && a.sample_rate <= 384000, "{}: longseq_audio.sample_rate {} is not an audio rate", source,
           a.sample_rate);
  LS_CHECK(!a.pool.empty(), "{}: longseq_audio.pool is empty; give one factor per stage, e.g. [16, 4, 4]", source);
  for (int64_t p : a.pool) LS_CHECK(p >= 1 && p <= 1024, "{}: longseq_audio.pool factor {} is outside 1..1024", source, p);
  LS_CHECK(a.level_rms >= 0 && a.level_rms <= 1, "{}: longseq_audio.level_rms {} is outside 0..1 (full scale is 1)", source, a.level_rms);
  if (a.filters > 0)
    LS_CHECK(a.frame >= a.pool[0] && a.frame <= 16384, "{}: longseq_audio.frontend.frame {} must lie in pool[0] ({})..16384", source,
             a.frame, a.pool[0]);
  LS_CHECK(a.clip_samples >= a.stride() && a.clip_samples % a.stride() == 0,
           "{}: longseq_audio.clip_samples {} is not a positive multiple of the pooling stride {}", source, a.clip_samples,
           a.stride());
  return a;
}

template <class T>
void GradModel<T>::add_pooling(const AudioSpec&, uint64_t) {
  fail("down-pooling stages (audio models) are implemented for the mamba family, not '{}'; use --family mamba", family());
}

template <class T>
void GradModel<T>::set_audio(const AudioSpec& spec, uint64_t seed) {
  LS_CHECK(!audio_, "the model is already an audio model");
  LS_CHECK(head_ == Head::LanguageModel, "set_audio before adding the classifier head");
  LS_CHECK(vocab_ >= 256, "an audio model reads 8-bit mu-law codes: its vocabulary must be >= 256, not {}", vocab_);
  (void)AudioSpec::from_json(spec.to_json(), "audio spec");
  add_pooling(spec, seed);
  audio_ = spec;
}

template <class T>
void GradModel<T>::add_classifier(std::vector<std::string> labels) {
  LS_CHECK(labels.size() >= 2, "a classifier needs at least 2 classes, got {}", labels.size());
  LS_CHECK(head_ == Head::LanguageModel, "the model already has a classifier head");
  head_ = Head::Classifier;
  classes_ = int64_t(labels.size());
  labels_ = std::move(labels);
  table_.add("classifier.weight", {classes_, d_model()}, true);
  table_.add("classifier.bias", {classes_}, true);
  weights_.resize(size_t(table_.size()), T(0));
}

template <class T>
Tensor GradModel<T>::tensor(const std::string& name) const {
  const ParamInfo& p = table_.find(name);
  Tensor t = Tensor::empty(p.shape);
  float* d = t.data<float>();
  for (int64_t i = 0; i < p.numel; ++i) d[i] = float(weights_[size_t(p.offset + i)]);
  return t;
}

template <class T>
std::vector<std::pair<std::string, Tensor>> GradModel<T>::named_tensors() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& p : table_.list()) out.emplace_back(p.name, tensor(p.name));
  return out;
}

template <class T>
void GradModel<T>::save(const std::filesystem::path& dir) const {
  std::filesystem::create_directories(dir);
  nlohmann::json cfg = config_json();
  if (head_ == Head::Classifier) cfg["longseq_head"] = {{"type", "classifier"}, {"classes", classes_}, {"labels", labels_}};
  if (audio_) cfg["longseq_audio"] = audio_->to_json();
  if (train_length_ > 0) cfg["longseq_train_length"] = train_length_;
  AtomicFile f(dir / "config.json");
  f.write(cfg.dump(2) + "\n");
  f.commit();
  write_safetensors(dir / "model.safetensors", named_tensors(), {{"format", "pt"}, {"producer", "longseq " LONGSEQ_VERSION}});
}

template <class T>
void GradModel<T>::set_device(std::shared_ptr<DeviceOps> ops) {
  LS_CHECK(!ops, "--device {}: {} models train on the CPU only for now; use --device cpu", ops->name(), family());
}

template <class T>
double GradModel<T>::lm_loss(std::span<const int64_t> ids, std::span<const int64_t> targets, double scale, T* grad) {
  LS_CHECK(targets.size() == ids.size(), "lm_loss: {} targets for {} tokens", targets.size(), ids.size());
  LS_CHECK(!audio_, "an audio model has no language-model head; train it with --task audio-classify");
  backbone_forward(ids);
  const int64_t L = int64_t(ids.size()), d = d_model();
  const double loss = lm_head_loss(mat<const T>(fin_.data(), L, d), lm_head_, targets, scale, grad, mat(dfin_.data(), L, d));
  if (grad) backbone_backward(ids, grad);
  return loss;
}

template <class T>
double GradModel<T>::class_loss(std::span<const int64_t> ids, int64_t label, double scale, T* grad, std::vector<double>* logits) {
  LS_CHECK(head_ == Head::Classifier, "class_loss on a model without a classifier head");
  backbone_forward(ids);
  const int64_t L = output_length(int64_t(ids.size())), d = d_model();
  const double loss = classifier_loss(mat<const T>(fin_.data(), L, d), label, scale, grad, mat(dfin_.data(), L, d), logits);
  if (grad) backbone_backward(ids, grad);
  return loss;
}

template <class T>
double GradModel<T>::lm_head_loss(Mat<const T> fin, int64_t head_offset, std::span<const int64_t> targets, double scale,
                                  T* grad, Mat<T> dfin) {
  const int64_t L = fin.rows, V = vocab_;
  std::vector<T> logits(static_cast<size_t>(L * V)), dlogits(static_cast<size_t>(L * V));
  linear_forward<T>(fin, w(head_offset), nullptr, mat(logits.data(), L, V));
  const double loss = cross_entropy<T>(mat<const T>(logits.data(), L, V), targets, scale, mat(dlogits.data(), L, V));
  if (grad) {
    for (int64_t r = 0; r < L; ++r) std::fill(dfin.row(r), dfin.row(r) + dfin.cols, T(0));
    linear_backward<T>(fin, w(head_offset), mat<const T>(dlogits.data(), L, V), &dfin, g(grad, head_offset), nullptr);
  }
  return loss;
}

template <class T>
double GradModel<T>::classifier_loss(Mat<const T> fin, int64_t label, double scale, T* grad, Mat<T> dfin,
                                     std::vector<double>* logits_out) {
  const int64_t L = fin.rows, d = fin.cols, K = classes_;
  LS_CHECK(label < K, "label {} outside the {} classes of the model", label, K);
  std::vector<T> pooled(size_t(d), T(0)), logits(static_cast<size_t>(K)), dlogits(static_cast<size_t>(K)), dpooled(size_t(d), T(0));
  for (int64_t r = 0; r < L; ++r)
    for (int64_t j = 0; j < d; ++j) pooled[size_t(j)] += fin.at(r, j);
  for (auto& p : pooled) p /= T(L);
  const int64_t wo = off("classifier.weight"), bo = off("classifier.bias");
  linear_forward<T>(mat<const T>(pooled.data(), 1, d), w(wo), w(bo), mat(logits.data(), 1, K));
  if (logits_out) logits_out->assign(logits.begin(), logits.end());
  const int64_t target = label;
  const double loss = label >= 0 ? cross_entropy<T>(mat<const T>(logits.data(), 1, K), std::span<const int64_t>(&target, 1), scale,
                                                    mat(dlogits.data(), 1, K))
                                 : 0.0;
  if (grad) {
    Mat<T> dp = mat(dpooled.data(), 1, d);
    linear_backward<T>(mat<const T>(pooled.data(), 1, d), w(wo), mat<const T>(dlogits.data(), 1, K), &dp, g(grad, wo), g(grad, bo));
    for (int64_t r = 0; r < L; ++r)
      for (int64_t j = 0; j < d; ++j) dfin.at(r, j) = dpooled[size_t(j)] / T(L);
  }
  return loss;
}

// Copies a tensor longseq added to a released architecture (classifier head, audio pooling) from
// the checkpoint into the model, checking its shape against the config.
template <class T>
void load_saved_tensor(GradModel<T>& model, const ModelDir& dir, const std::string& name) {
  LS_CHECK(dir.weights.contains(name), "{}: checkpoint without '{}' (re-save it with longseq train)", dir.weights.path().string(), name);
  const ParamInfo& p = model.params().find(name);
  const Tensor t = dir.weights.load_f32(name);
  LS_CHECK(t.shape() == p.shape, "{}: '{}' has shape {} but config.json implies {}", dir.weights.path().string(), name,
           shape_str(t.shape()), shape_str(p.shape));
  const std::vector<float> v = t.to_vector();
  std::copy(v.begin(), v.end(), model.weights().begin() + p.offset);
}

template <class T>
std::unique_ptr<GradModel<T>> make_grad_model(const LanguageModel& model, const ModelDir* dir) {
  const Family& family = family_named(model.family());
  std::unique_ptr<GradModel<T>> out;
  if constexpr (std::is_same_v<T, float>)
    out = family.trainable_f32(model);
  else
    out = family.trainable_f64(model);
  if (!dir) return out;
  if (dir->config.has("longseq_audio")) {
    out->set_audio(AudioSpec::from_json(dir->config.json().at("longseq_audio"), dir->config.source()), 0);
    for (size_t s = 0; s < out->audio()->pool.size(); ++s)
      for (const char* part : {"weight", "bias"}) load_saved_tensor(*out, *dir, fmt::format("backbone.pool.{}.{}", s, part));
    if (out->audio()->filters > 0) load_saved_tensor(*out, *dir, "backbone.filterbank.weight");
  }
  if (dir->config.has("longseq_head")) {
    const nlohmann::json& head = dir->config.json().at("longseq_head");
    LS_CHECK(head.value("type", "") == "classifier" && head.contains("labels") && head["labels"].is_array(),
             "{}: 'longseq_head' must be {{\"type\": \"classifier\", \"labels\": [...]}}", dir->config.source());
    out->add_classifier(head["labels"].template get<std::vector<std::string>>());
    for (const char* name : {"classifier.weight", "classifier.bias"}) load_saved_tensor(*out, *dir, name);
  }
  return out;
}

template <class T>
std::unique_ptr<GradModel<T>> load_grad_model(const std::filesystem::path& path) {
  const ModelDir dir = ModelDir::open(path);
  const auto lm = load_backbone_model(dir);
  return make_grad_model<T>(*lm, &dir);
}

std::vector<double> class_probabilities(GradModel<float>& model, std::span<const int64_t> ids) {
  std::vector<double> p;
  model.class_loss(ids, -1, 1.0, nullptr, &p);
  const double mx = *std::max_element(p.begin(), p.end());
  double sum = 0;
  for (double& l : p) sum += (l = std::exp(l - mx));
  for (double& l : p) l /= sum;
  return p;
}

template class GradModel<float>;
template class GradModel<double>;
template std::unique_ptr<GradModel<float>> make_grad_model<float>(const LanguageModel&, const ModelDir*);
template std::unique_ptr<GradModel<double>> make_grad_model<double>(const LanguageModel&, const ModelDir*);
template std::unique_ptr<GradModel<float>> load_grad_model<float>(const std::filesystem::path&);
template std::unique_ptr<GradModel<double>> load_grad_model<double>(const std::filesystem::path&);

}  // namespace longseq::train
