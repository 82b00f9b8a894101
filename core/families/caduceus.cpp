// The Caduceus family (kuleshov-group/caduceus, Hugging Face format): recognised and summarised by
// `info`; loading it for a forward pass is refused until its layers exist.
#include "core/error.h"
#include "core/families/family.h"

namespace longseq {

namespace {

class CaduceusFamily final : public Family {
 public:
  std::string name() const override { return "caduceus"; }
  std::string title() const override { return "Caduceus"; }
  bool recognizes(const Config& c) const override { return c.get_string("model_type", "") == "caduceus"; }

  void summarize(const ModelDir& m, ModelSummary& s) const override {
    s.format = "huggingface";
    const Config& c = m.config;
    const auto yes_no = [](bool b) { return std::string(b ? "true" : "false"); };
    s.hyperparameters = {{"d_model", std::to_string(c.get_int("d_model"))},
                         {"n_layer", std::to_string(c.get_int("n_layer"))},
                         {"vocab_size", std::to_string(c.get_int("vocab_size"))},
                         {"rcps", yes_no(c.get_bool("rcps", false))},
                         {"bidirectional", yes_no(c.get_bool("bidirectional", true))}};
    s.notes.push_back("Caduceus: inspection only; forward passes are not implemented yet");
  }

  bool is_buffer(const std::string& tensor) const override { return tensor.ends_with("complement_map"); }

  std::unique_ptr<LanguageModel> load(const ModelDir& dir) const override {
    fail("{}: Caduceus models can be inspected (longseq info) but not run yet", dir.dir.string());
  }
};

}  // namespace

const Family& caduceus_family() {
  static const CaduceusFamily family;
  return family;
}

}  // namespace longseq
