// `longseq forward`: run a model on the `input_ids` (B, L) of a safetensors file and write logits
// (and hidden states, recurrent states) under the reference fixtures' names, so any reference can be
// checked from the command line.
#include "apps/longseq/commands.h"
#include "core/error.h"
#include "core/fileio.h"
#include "core/families/family.h"
#include "core/safetensors.h"
#include "core/train/grad_model.h"

#include <fmt/format.h>

namespace longseq::cli {

namespace {

struct ForwardArgs {
  std::string model, input, output;
  bool hidden = false, states = false, grad = false;
  int64_t chunk = 4096;
};

// Stacks per-sequence (rows...) tensors into (B, rows...).
Tensor stack(const std::vector<Tensor>& parts) {
  Shape shape = parts.front().shape();
  if (!shape.empty() && shape.front() == 1 && parts.front().dim() == 3) shape.erase(shape.begin());  // (1, X, Y) states
  Shape full = shape;
  full.insert(full.begin(), int64_t(parts.size()));
  Tensor out = Tensor::empty(full);
  for (size_t b = 0; b < parts.size(); ++b) out.select(0, int64_t(b)).copy_from(parts[b].reshape(shape));
  return out;
}

// `loss` = mean next-token cross-entropy over positions 0..L-2 of every sequence (the fixtures'
// definition) and `grad.<name>` for every trainable parameter, by the training backward in float32.
void add_gradients(const ForwardArgs& a, const Tensor& ids, std::vector<std::pair<std::string, Tensor>>& tensors) {
  const auto gm = train::load_grad_model<float>(a.model);
  const int64_t B = ids.size(0), L = ids.size(1);
  LS_CHECK(L >= 2, "{}: --grad needs sequences of at least 2 tokens (next-token loss), got L = {}", a.input, L);
  std::vector<float> grad(size_t(gm->params().size()), 0.0f);
  const double scale = 1.0 / double(B * (L - 1));
  double loss = 0;
  for (int64_t b = 0; b < B; ++b) {
    std::vector<int64_t> seq(static_cast<size_t>(L)), targets(static_cast<size_t>(L), -1);
    const Tensor row = ids.select(0, b).to(DType::I64);
    for (int64_t t = 0; t < L; ++t) seq[size_t(t)] = row.data<int64_t>()[t];
    for (int64_t t = 0; t + 1 < L; ++t) targets[size_t(t)] = seq[size_t(t + 1)];
    loss += gm->lm_loss(seq, targets, scale, grad.data());
  }
  tensors.emplace_back("loss", Tensor::from_vector({float(loss * scale)}, {1}));
  for (const auto& p : gm->params().list()) {
    if (!p.trainable) continue;
    Tensor g = Tensor::empty(p.shape);
    std::copy(grad.begin() + p.offset, grad.begin() + p.offset + p.numel, g.data<float>());
    tensors.emplace_back("grad." + p.name, g);
  }
}

// A NaN or infinity in a result means an overflow inside the model; such a file is never written.
void check_finite(const std::vector<std::pair<std::string, Tensor>>& tensors, const std::string& output) {
  for (const auto& [name, t] : tensors) {
    if (!dtype_is_float(t.dtype())) continue;
    const int64_t bad = first_non_finite(t);
    LS_CHECK(bad < 0, "{}: '{}' would hold a non-finite value at flat index {} (an overflow in the model); nothing was written",
             output, name, bad);
  }
}

void run(const ForwardArgs& a) {
  auto inputs = ModelDir::files(a.model);
  inputs.push_back(a.input);
  check_output_file(a.output, inputs);
  const auto model = load_language_model(ModelDir::open(a.model));
  const auto in = SafetensorsFile::open(a.input);
  if (!in.contains("input_ids")) fail("{}: no 'input_ids' tensor (expected token ids of shape (B, L))", a.input);
  const Tensor ids = in.view("input_ids");
  LS_CHECK(ids.dim() == 2 && (ids.dtype() == DType::I64 || ids.dtype() == DType::I32),
           "{}: input_ids must be I64 or I32 of shape (B, L), got {}", a.input, ids.describe());
  std::vector<ForwardOutputs> outs;
  for (int64_t b = 0; b < ids.size(0); ++b)
    outs.push_back(model->forward(ids.select(0, b), {.hidden = a.hidden, .chunk = a.chunk}));

  std::vector<std::pair<std::string, Tensor>> tensors;
  auto gather = [&](auto pick) {
    std::vector<Tensor> parts;
    for (const auto& o : outs) parts.push_back(pick(o));
    return stack(parts);
  };
  tensors.emplace_back("logits", gather([](const ForwardOutputs& o) { return o.logits; }));
  if (a.hidden) {
    for (int64_t i = 0; i < model->n_layer(); ++i)
      tensors.emplace_back(fmt::format("hidden_{}", i), gather([i](const ForwardOutputs& o) { return o.hidden[size_t(i)]; }));
    tensors.emplace_back("final_hidden", gather([](const ForwardOutputs& o) { return o.final_hidden; }));
  }
  if (a.states)
    for (size_t k = 0; k < outs.front().extra.size(); ++k)
      tensors.emplace_back(outs.front().extra[k].first, gather([k](const ForwardOutputs& o) { return o.extra[k].second; }));
  if (a.grad) add_gradients(a, ids, tensors);
  check_finite(tensors, a.output);
  write_safetensors(a.output, tensors,
                    {{"producer", "longseq " LONGSEQ_VERSION}, {"model", a.model}, {"family", model->family()},
                     {"chunk", std::to_string(a.chunk)}});
}

}  // namespace

void add_forward(CLI::App& app) {
  auto args = std::make_shared<ForwardArgs>();
  auto* cmd = app.add_subcommand("forward", "Run a model on input_ids from a safetensors file; write logits and states");
  cmd->add_option("-m,--model", args->model, "Model directory")->required();
  cmd->add_option("-i,--input", args->input, "safetensors file with input_ids (B, L)")->required();
  cmd->add_option("-o,--output", args->output, "Output safetensors file")->required();
  cmd->add_flag("--hidden", args->hidden, "Also write hidden_{i} (residual stream after block i) and final_hidden");
  cmd->add_flag("--states", args->states, "Also write the final recurrent states (ssm_state_{i}, conv_state_{i})");
  cmd->add_flag("--grad", args->grad,
                "Also write loss (mean next-token cross-entropy over positions 0..L-2) and grad.<name> for every parameter");
  cmd->add_option("--chunk", args->chunk, "Tokens per streamed chunk")->check(CLI::Range(int64_t(1), int64_t(1) << 24));
  cmd->callback([args] { run(*args); });
}

}  // namespace longseq::cli
