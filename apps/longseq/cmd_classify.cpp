// `longseq classify`: predictions of a sequence classifier trained by `longseq train --task classify`
// for every record of a FASTA file (or every line of a TSV), as a TSV with the class probabilities.
#include "apps/longseq/commands.h"
#include "core/error.h"
#include "core/fileio.h"
#include "core/model_dir.h"
#include "core/progress.h"
#include "core/threads.h"
#include "core/train/grad_model.h"
#include "genomics/dna_tasks.h"
#include "genomics/fasta.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

namespace longseq::cli {

namespace {

struct ClassifyArgs {
  std::string model, input, output = "-";
  int64_t crop = 0;
};

std::vector<LabelledSequence> read_inputs(const std::string& path) {
  const std::string p = path;
  if (p.ends_with(".tsv") || p.ends_with(".txt")) return read_labelled_sequences(p);
  const FastaReader r = FastaReader::open(p);
  std::vector<LabelledSequence> out;
  for (const auto& c : r.contigs()) out.push_back({c, r.fetch(c, 0, r.length(c)), ""});
  LS_CHECK(!out.empty(), "{}: no sequences", p);
  return out;
}

void run(const ClassifyArgs& a) {
  if (a.output != "-") {
    auto inputs = ModelDir::files(a.model);
    for (const auto& p : with_suffixes(a.input, {".fai", ".gzi"})) inputs.push_back(p);
    check_output_file(a.output, inputs);
  }
  const auto proto = train::load_grad_model<float>(a.model);
  LS_CHECK(proto->head() == train::Head::Classifier,
           "{} is a language model, not a classifier (train one with `longseq train --task classify`)", a.model);
  const auto inputs = read_inputs(a.input);
  const DnaTokenizer tok = DnaTokenizer::standard();
  const auto& labels = proto->labels();
  std::vector<std::vector<double>> probs(inputs.size());
  std::vector<std::unique_ptr<train::GradModel<float>>> workers;
  for (int i = 0; i < num_threads(); ++i) workers.push_back(proto->clone());
  Progress progress("classify", int64_t(inputs.size()), "sequences");
  std::string error;
#pragma omp parallel for schedule(dynamic, 1)
  for (size_t i = 0; i < inputs.size(); ++i) {
    try {
      std::vector<int64_t> ids(inputs[i].sequence.size());
      tok.encode(inputs[i].sequence, ids.data());
      if (a.crop > 0 && int64_t(ids.size()) > a.crop) {
        const int64_t off = (int64_t(ids.size()) - a.crop) / 2;
        ids = std::vector<int64_t>(ids.begin() + off, ids.begin() + off + a.crop);
      }
      LS_CHECK(!ids.empty(), "{}: sequence '{}' is empty", a.input, inputs[i].name);
      probs[i] = train::class_probabilities(*workers[size_t(thread_slot())], ids);
      LS_CHECK(std::all_of(probs[i].begin(), probs[i].end(), [](double p) { return std::isfinite(p); }),
               "{}: sequence '{}' got non-finite class probabilities (an overflow in the model); nothing was written", a.input,
               inputs[i].name);
    } catch (const std::exception& e) {
#pragma omp critical
      if (error.empty()) error = e.what();
    }
#pragma omp critical
    progress.add(1);
  }
  if (!error.empty()) throw Error(error);
  progress.finish();
  std::string text = "name\tpredicted\tprobability";
  for (const auto& l : labels) text += "\tp_" + l;
  text += "\n";
  for (size_t i = 0; i < inputs.size(); ++i) {
    const size_t best = size_t(std::max_element(probs[i].begin(), probs[i].end()) - probs[i].begin());
    text += fmt::format("{}\t{}\t{:.6f}", inputs[i].name, labels[best], probs[i][best]);
    for (double p : probs[i]) text += fmt::format("\t{:.6f}", p);
    text += "\n";
  }
  if (a.output == "-") {
    std::fwrite(text.data(), 1, text.size(), stdout);
  } else {
    AtomicFile f(a.output);
    f.write(text);
    f.commit();
  }
  spdlog::info("classified {} sequences into {} classes", inputs.size(), labels.size());
}

}  // namespace

void add_classify(CLI::App& app) {
  auto a = std::make_shared<ClassifyArgs>();
  auto* cmd = app.add_subcommand("classify", "Predict classes of DNA sequences with a trained classifier");
  cmd->add_option("-m,--model", a->model, "Classifier folder (OUT/model of `longseq train --task classify`)")->required();
  cmd->add_option("input", a->input, "FASTA (plain or bgzipped) or TSV 'sequence<TAB>label'")->required();
  cmd->add_option("-o,--output", a->output, "Output TSV (default stdout)");
  cmd->add_option("--crop", a->crop, "Classify the central CROP bases of longer sequences (0: whole)")->check(CLI::Range(int64_t(0), int64_t(1) << 30));
  cmd->callback([a] { run(*a); });
}

}  // namespace longseq::cli
