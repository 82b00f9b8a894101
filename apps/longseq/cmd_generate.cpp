// `longseq generate`: continue a DNA prompt with any causal model. Each sample has its own decoder
// (a streaming family carries its recurrent state: one token's work per new token) and its own
// generator, seeded from --seed and the sample's index, so samples run in parallel over threads and
// the output is the same bytes for any --threads. Only bases are drawn (a DNA model's special tokens
// are not sequence). The FASTA output is written whole or not at all.
#include "apps/longseq/commands.h"
#include "apps/longseq/model_args.h"
#include "core/error.h"
#include "core/families/family.h"
#include "core/fileio.h"
#include "core/models/lm.h"
#include "core/models/sampling.h"
#include "core/progress.h"
#include "core/threads.h"
#include "genomics/fasta.h"
#include "genomics/tokenizer.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <optional>

namespace longseq::cli {

namespace {

struct GenerateArgs {
  std::string model, fasta, region, text, output = "-", device = "cpu";
  int64_t max_new = 100, top_k = 0, samples = 1;
  uint64_t seed = 1;
  double temperature = 1.0;
  bool allow_n = false, include_prompt = false;
};

// One sample: the prompt run once, then max_new draws, each fed back.
std::string generate_one(const LanguageModel& model, const DnaTokenizer& tok, const std::vector<int64_t>& prompt,
                         std::span<const int64_t> allowed, const GenerateArgs& a, int64_t index, Progress& progress) {
  Rng rng(a.seed * 0x9e3779b97f4a7c15ull + uint64_t(index));
  const SamplingOptions options{.temperature = a.temperature, .top_k = a.top_k};
  const auto decoder = model.decoder();
  std::vector<float> logits = decoder->feed(prompt);
  std::string out;
  for (int64_t t = 0; t < a.max_new; ++t) {
    const int64_t id = sample_token(logits, allowed, options, rng);
    out += tok.base(id);
    if (t + 1 < a.max_new) logits = decoder->feed(std::span(&id, 1));
#pragma omp critical(longseq_generate_progress)
    progress.add(1);  // Progress is not thread-safe; samples run on several threads
  }
  return out;
}

std::string prompt_text(const GenerateArgs& a) {
  if (!a.text.empty()) return a.text;
  const FastaReader fasta = FastaReader::open(a.fasta);
  const Region r = fasta.resolve(parse_region(a.region));
  return fasta.fetch(r.contig, r.start, r.end);
}

void run(const GenerateArgs& a) {
  LS_CHECK(a.text.empty() != a.fasta.empty(), "give exactly one prompt: --text SEQUENCE, or --fasta REF with --region chr:a-b");
  LS_CHECK(a.fasta.empty() || !a.region.empty(), "--fasta needs --region chr:start-end (the prompt)");
  std::vector<std::filesystem::path> inputs = ModelDir::files(a.model);
  if (!a.fasta.empty()) inputs.push_back(a.fasta);
  if (a.output != "-") check_output_file(a.output, inputs);
  const ModelDir dir = ModelDir::open(a.model);
  const auto model = make_device_model(load_language_model(dir), a.device);
  LS_CHECK(model->causal(), "{}: a bidirectional (masked-language) model predicts no next token and cannot generate; use a causal model",
           a.model);
  const DnaTokenizer tok = DnaTokenizer::from_config(dir.config, model->vocab_size());
  const std::string prompt_bases = prompt_text(a);
  LS_CHECK(!prompt_bases.empty(), "the prompt is empty: a causal model needs at least one base to continue");
  std::vector<int64_t> prompt(prompt_bases.size());
  tok.encode(prompt_bases, prompt.data());
  std::vector<int64_t> allowed;
  for (char b : std::string(a.allow_n ? "ACGTN" : "ACGT")) allowed.push_back(tok.id(b));
  std::vector<std::string> out(size_t(a.samples));
  Progress progress("generate", a.samples * a.max_new, "tokens");
  std::exception_ptr error;
  for_blocks(a.samples, 1, [&](int64_t i, int64_t, int) {
    try {
      out[size_t(i)] = generate_one(*model, tok, prompt, allowed, a, i, progress);
    } catch (...) {
#pragma omp critical(longseq_generate_error)
      if (!error) error = std::current_exception();
    }
  });
  if (error) std::rethrow_exception(error);
  progress.finish();
  std::optional<AtomicFile> file;
  FILE* f = stdout;
  if (a.output != "-") {
    file.emplace(a.output);
    f = file->stream();
  }
  const std::string source = a.text.empty() ? a.region : fmt::format("text:{}bp", a.text.size());
  for (size_t i = 0; i < out.size(); ++i) {
    fmt::print(f, ">sample{} prompt={} seed={} index={} temperature={} top_k={}\n", i + 1, source, a.seed, i, a.temperature, a.top_k);
    const std::string seq = a.include_prompt ? prompt_bases + out[i] : out[i];
    for (size_t p = 0; p < seq.size(); p += 60) fmt::print(f, "{}\n", seq.substr(p, 60));
  }
  if (file) file->commit();
  spdlog::info("generate: {} sample(s) of {} bases after a {}-base prompt", a.samples, a.max_new, prompt.size());
}

}  // namespace

void add_generate(CLI::App& app) {
  auto a = std::make_shared<GenerateArgs>();
  auto* cmd = app.add_subcommand("generate", "Continue a DNA prompt with a causal model (sampling, deterministic given --seed)");
  cmd->footer(
      "Draws bases only (A, C, G, T; N with --allow-n) from softmax(logits / temperature), among the --top-k most likely when "
      "given; --temperature 0 is greedy (the most likely base, ties to the first of ACGT). Sample i uses the generator seeded by "
      "--seed and i, so the output does not depend on --threads. A model that streams (Mamba) carries its state: one token's work "
      "per base; whole-window models (HyenaDNA) run the window again per base. Output: FASTA, 60 bases per line.");
  cmd->add_option("-m,--model", a->model, "Model directory")->required();
  cmd->add_option("--text", a->text, "The prompt, a DNA sequence");
  cmd->add_option("--fasta", a->fasta, "Reference FASTA for the prompt");
  cmd->add_option("--region", a->region, "chr:start-end of --fasta (1-based, inclusive): the prompt");
  cmd->add_option("--max-new", a->max_new, "Bases to generate per sample (1..10000000)")->check(CLI::Range(int64_t(1), int64_t(10'000'000)));
  cmd->add_option("--temperature", a->temperature, "Sampling temperature (0: greedy; 0..100)")->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--top-k", a->top_k, "Sample among the k most likely bases (0: all; 0..5)")->check(CLI::Range(int64_t(0), int64_t(5)));
  cmd->add_option("--seed", a->seed, "Random seed");
  cmd->add_option("-n,--samples", a->samples, "Independent samples (1..100000)")->check(CLI::Range(int64_t(1), int64_t(100'000)));
  cmd->add_flag("--allow-n", a->allow_n, "Let N be drawn too");
  cmd->add_flag("--include-prompt", a->include_prompt, "Write the prompt before each sample");
  cmd->add_option("-o,--output", a->output, "OUT.fa ('-': stdout, the default)");
  add_device_option(cmd, a->device);
  cmd->callback([a] { run(*a); });
}

}  // namespace longseq::cli
