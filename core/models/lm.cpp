#include "core/models/lm.h"

#include "core/error.h"
#include "core/models/hyena.h"
#include "core/models/hyena_config.h"
#include "core/models/mamba.h"
#include "core/models/mamba_config.h"

namespace longseq {

void LanguageModel::stream_logits(const Tensor& ids, int64_t chunk, const LogitsSink& sink) const {
  LS_CHECK(ids.dim() == 1, "expected 1-D token ids, got {}", ids.describe());
  stream_logits(ids.size(0), [&](int64_t start, Tensor& out) { out.copy_from(ids.slice(0, start, out.size(0))); }, chunk, sink);
}

std::unique_ptr<LanguageModel> load_language_model(const ModelDir& dir) {
  const std::string type = dir.config.get_string("model_type", "");
  if (type == "caduceus")
    fail("{}: Caduceus models can be inspected (longseq info) but not run yet", dir.dir.string());
  if (looks_like_hyena(dir.config)) return HyenaModel::load(dir);
  if (looks_like_mamba(dir.config)) return MambaModel::load(dir);
  fail("{}: unknown model family (model_type '{}'); longseq runs Mamba-1 and HyenaDNA models", dir.config.source(), type);
}

}  // namespace longseq
