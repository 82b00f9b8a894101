// `longseq embed`: a model's hidden states for DNA regions, a literal sequence or token ids, per
// position or pooled, for every family (the features of TraitGym-style probes and of Caduceus's
// variant-effect recipe). Regions run in parallel over threads and are written in input order, so
// the output does not depend on --threads; the output file is written whole or not at all.
#include "apps/longseq/commands.h"
#include "apps/longseq/model_args.h"
#include "core/error.h"
#include "core/fileio.h"
#include "core/families/family.h"
#include "core/models/lm.h"
#include "core/progress.h"
#include "core/safetensors.h"
#include "core/threads.h"
#include "genomics/fasta.h"
#include "genomics/tokenizer.h"
#include "genomics/variant_scorer.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <optional>
#include <sstream>

namespace longseq::cli {

namespace {

struct EmbedArgs {
  std::string model, fasta, regions, regions_file, text, input, output, pool = "mean", device = "cpu";
  std::vector<int64_t> layers = {-1};
  bool rc_average = false, keep_case = false;
};

// One input sequence: its name and token ids.
struct Item {
  std::string name;
  std::vector<int64_t> ids;
};

std::vector<int64_t> encode(const DnaTokenizer& tok, const std::string& bases) {
  std::vector<int64_t> ids(bases.size());
  tok.encode(bases, ids.data());
  return ids;
}

std::vector<Item> read_items(const EmbedArgs& a, const DnaTokenizer& tok) {
  std::vector<Item> items;
  if (!a.text.empty()) {
    items.push_back({"text", encode(tok, a.text)});
  } else if (!a.input.empty()) {
    const auto f = SafetensorsFile::open(a.input);
    LS_CHECK(f.contains("input_ids"), "{}: no 'input_ids' tensor (write the ids as input_ids, shape (B, L) or (L))", a.input);
    Tensor ids = f.view("input_ids").to(DType::I64);
    if (ids.dim() == 1) ids = ids.unsqueeze(0);
    LS_CHECK(ids.dim() == 2, "{}: input_ids has shape {}; expected (B, L) or (L)", a.input, shape_str(ids.shape()));
    for (int64_t b = 0; b < ids.size(0); ++b) {
      const Tensor row = ids.select(0, b).contiguous();
      items.push_back({fmt::format("row{}", b), std::vector<int64_t>(row.data<int64_t>(), row.data<int64_t>() + row.numel())});
    }
  } else {
    const FastaReader fasta = FastaReader::open(a.fasta);
    std::vector<BedRegion> regions;
    const auto add = [&](Region r, std::string name) {
      regions.emplace_back();
      regions.back().region = std::move(r);
      regions.back().name = std::move(name);
    };
    if (!a.regions_file.empty()) {
      regions = read_bed(a.regions_file);
    } else if (!a.regions.empty()) {
      std::stringstream ss(a.regions);
      for (std::string r; std::getline(ss, r, ',');)
        if (!r.empty()) add(parse_region(r), r);
    } else {
      for (const auto& c : fasta.contigs()) add(Region{c, 0, -1}, c);
    }
    for (const BedRegion& r : regions) {
      const Region g = fasta.resolve(r.region);
      const std::string name = r.name.empty() ? fmt::format("{}:{}-{}", g.contig, g.start + 1, g.end) : r.name;
      items.push_back({name, encode(tok, fasta.fetch(g.contig, g.start, g.end))});
    }
  }
  for (const Item& it : items) LS_CHECK(!it.ids.empty(), "{}: an empty sequence has no embedding (check the region)", it.name);
  return items;
}

// Reverse complement of token ids by the tokenizer's letters (specials and N unchanged).
std::vector<int64_t> reverse_complement_ids(const DnaTokenizer& tok, const std::vector<int64_t>& ids) {
  std::string bases(ids.size(), 'N');
  for (size_t i = 0; i < ids.size(); ++i) bases[i] = tok.base(ids[i]);
  std::vector<int64_t> out = encode(tok, reverse_complement(bases));
  for (size_t i = 0; i < ids.size(); ++i)  // ids without a base letter keep their id, mirrored
    if (bases[i] == '?') out[ids.size() - 1 - i] = ids[i];
  return out;
}

class Embedder {
 public:
  Embedder(const EmbedArgs& a, const LanguageModel& model, const DnaTokenizer& tok) : a_(a), model_(model), tok_(tok) {
    for (int64_t l : a.layers)
      LS_CHECK(l >= -1 && l < model.n_layer(), "--layer {}: the model has blocks 0..{} (-1: the final normalised states)", l,
               model.n_layer() - 1);
  }
  // Per requested layer, the (L, d) states of the item, or (1, d) pooled.
  std::vector<Tensor> run(const std::vector<int64_t>& ids) const {
    LS_CHECK(model_.max_length() == 0 || int64_t(ids.size()) <= model_.max_length(),
             "a sequence of {} tokens exceeds the model's maximum {} (embed shorter regions)", ids.size(), model_.max_length());
    std::vector<Tensor> states = layer_states(ids);
    if (a_.rc_average) {  // the reverse complement's states, rows back in the sequence's order
      const std::vector<Tensor> rc = layer_states(reverse_complement_ids(tok_, ids));
      for (size_t k = 0; k < states.size(); ++k) {
        const int64_t L = states[k].size(0), d = states[k].size(1);
        float* s = states[k].data<float>();
        const float* r = rc[k].data<float>();
        for (int64_t t = 0; t < L; ++t)
          for (int64_t j = 0; j < d; ++j) s[t * d + j] = 0.5f * (s[t * d + j] + r[(L - 1 - t) * d + j]);
      }
    }
    for (Tensor& s : states) s = pool(s);
    return states;
  }

 private:
  std::vector<Tensor> layer_states(const std::vector<int64_t>& ids) const {
    std::vector<int64_t> blocks;  // only the blocks asked for are kept (the final states always are)
    for (int64_t l : a_.layers) blocks.push_back(l < 0 ? model_.n_layer() : l);
    ForwardOutputs f = model_.forward(Tensor::from_ids(ids), {.hidden = true, .hidden_blocks = blocks});
    std::vector<Tensor> out;
    for (int64_t l : a_.layers) out.push_back(l < 0 ? f.final_hidden : f.hidden.at(size_t(l)));
    return out;
  }
  // mean: over the rows; cls: the one row that has seen the whole window (the last for a causal
  // model, the first for a bidirectional one); none: every row.
  Tensor pool(const Tensor& s) const {
    const int64_t L = s.size(0), d = s.size(1);
    if (a_.pool == "none") return s;
    if (a_.pool == "cls") return s.slice(0, model_.causal() ? L - 1 : 0, 1).contiguous();
    std::vector<double> sum(static_cast<size_t>(d), 0.0);
    for (int64_t t = 0; t < L; ++t)
      for (int64_t j = 0; j < d; ++j) sum[size_t(j)] += double(s.data<float>()[t * d + j]);
    std::vector<float> mean(static_cast<size_t>(d));
    for (int64_t j = 0; j < d; ++j) mean[size_t(j)] = float(sum[size_t(j)] / double(L));
    return Tensor::from_vector(mean, {1, d});
  }
  const EmbedArgs& a_;
  const LanguageModel& model_;
  const DnaTokenizer& tok_;
};

std::string layer_name(int64_t l) { return l < 0 ? "final" : fmt::format("layer_{}", l); }

// safetensors: pooled, one (R, d) tensor per layer ("final", "layer_3") with the names in the
// metadata; per position, one (L, d) tensor per item and layer ("<name>/final").
void write_safetensors_out(const EmbedArgs& a, const std::vector<Item>& items, const std::vector<std::vector<Tensor>>& out) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  nlohmann::json names = nlohmann::json::array();
  for (const Item& it : items) names.push_back(it.name);
  for (size_t k = 0; k < a.layers.size(); ++k) {
    if (a.pool == "none") {
      for (size_t i = 0; i < items.size(); ++i) tensors.emplace_back(items[i].name + "/" + layer_name(a.layers[k]), out[i][k]);
      continue;
    }
    const int64_t d = out[0][k].size(1);
    Tensor t = Tensor::empty({int64_t(items.size()), d});
    for (size_t i = 0; i < items.size(); ++i) std::copy_n(out[i][k].data<float>(), d, t.data<float>() + int64_t(i) * d);
    tensors.emplace_back(layer_name(a.layers[k]), t);
  }
  write_safetensors(a.output, tensors,
                    {{"format", "pt"}, {"producer", "longseq " LONGSEQ_VERSION}, {"names", names.dump()}, {"pool", a.pool},
                     {"model", a.model}, {"rc_average", a.rc_average ? "true" : "false"}});
}

// TSV: name, layer, (position when not pooled,) e0 .. e{d-1}.
void write_tsv_out(const EmbedArgs& a, const std::vector<Item>& items, const std::vector<std::vector<Tensor>>& out) {
  std::optional<AtomicFile> file;
  FILE* f = stdout;
  if (a.output != "-") {
    file.emplace(a.output);
    f = file->stream();
  }
  const int64_t d = out[0][0].size(1);
  fmt::print(f, "#name\tlayer{}", a.pool == "none" ? "\tpos" : "");
  for (int64_t j = 0; j < d; ++j) fmt::print(f, "\te{}", j);
  fmt::print(f, "\n");
  for (size_t i = 0; i < items.size(); ++i)
    for (size_t k = 0; k < a.layers.size(); ++k) {
      const Tensor& t = out[i][k];
      for (int64_t r = 0; r < t.size(0); ++r) {
        fmt::print(f, "{}\t{}", items[i].name, layer_name(a.layers[k]));
        if (a.pool == "none") fmt::print(f, "\t{}", r + 1);
        for (int64_t j = 0; j < d; ++j) fmt::print(f, "\t{:.7g}", t.data<float>()[r * d + j]);
        fmt::print(f, "\n");
      }
    }
  if (file) file->commit();
}

void run(const EmbedArgs& a) {
  const int sources = int(!a.fasta.empty()) + int(!a.text.empty()) + int(!a.input.empty());
  LS_CHECK(sources == 1, "give exactly one of --fasta FILE, --text SEQUENCE or -i IDS.safetensors");
  LS_CHECK(!a.fasta.empty() || (a.regions.empty() && a.regions_file.empty()), "--regions and --regions-file apply to --fasta only");
  const bool tsv = a.output == "-" || a.output.ends_with(".tsv") || a.output.ends_with(".txt");
  LS_CHECK(tsv || a.output.ends_with(".safetensors"), "-o {}: write .safetensors or .tsv (or '-' for TSV on stdout)", a.output);
  if (a.output != "-") {
    std::vector<std::filesystem::path> inputs = ModelDir::files(a.model);
    for (const auto& p : {a.fasta, a.input, a.regions_file})
      if (!p.empty()) inputs.push_back(p);
    check_output_file(a.output, inputs);
  }
  const ModelDir dir = ModelDir::open(a.model);
  const auto model = make_device_model(load_language_model(dir), a.device);
  DnaTokenizer tok = DnaTokenizer::from_config(dir.config, model->vocab_size());
  tok.set_keep_case(a.keep_case);
  const std::vector<Item> items = read_items(a, tok);
  const Embedder embedder(a, *model, tok);
  std::vector<std::vector<Tensor>> out(items.size());
  Progress progress("embed", int64_t(items.size()), "sequences");
  const int64_t n = int64_t(items.size()), batch = 4 * int64_t(num_threads());
  for (int64_t b0 = 0; b0 < n; b0 += batch) {  // progress is drawn from this thread, between batches
    const int64_t rows = std::min(batch, n - b0);
    for_blocks(rows, 1, [&](int64_t i, int64_t, int) { out[size_t(b0 + i)] = embedder.run(items[size_t(b0 + i)].ids); });
    progress.add(rows);
  }
  progress.finish();
  for (const auto& per_item : out)
    for (const Tensor& t : per_item)
      for (int64_t i = 0; i < t.numel(); ++i)
        LS_CHECK(std::isfinite(t.data<float>()[i]), "the model gave a non-finite state (an overflow); nothing was written");
  if (tsv)
    write_tsv_out(a, items, out);
  else
    write_safetensors_out(a, items, out);
  spdlog::info("embed: {} sequences, {} layer(s), pool {}, width {}", items.size(), a.layers.size(), a.pool, model->d_model());
}

}  // namespace

void add_embed(CLI::App& app) {
  auto a = std::make_shared<EmbedArgs>();
  auto* cmd = app.add_subcommand("embed", "Hidden states of DNA regions, a sequence or token ids: per position or pooled, any family");
  cmd->footer(
      "Layers: -1 is the final normalised hidden state (the LM head's input), i >= 0 the residual stream after block i. Pooling: "
      "mean over the positions; cls: the one position that has seen the whole window (the last for a causal model, the first for a "
      "bidirectional one); none: every position. --rc-average averages the states of the sequence and of its reverse complement "
      "(rows put back in the sequence's order); for Caduceus-PS this is its RC-invariant embedding. safetensors output: pooled, one "
      "(sequences, width) tensor per layer ('final', 'layer_3') with the sequence names in the metadata key 'names'; per position, "
      "'<name>/<layer>' (L, width). TSV: name, layer, (pos,) e0..");
  cmd->add_option("-m,--model", a->model, "Model directory")->required();
  cmd->add_option("--fasta", a->fasta, "Reference FASTA (every contig whole unless --regions / --regions-file)");
  auto* regions = cmd->add_option("--regions", a->regions, "chr:start-end[,chr:start-end...] (1-based, inclusive)");
  cmd->add_option("--regions-file", a->regions_file, "BED file of regions (its name column names the rows)")->excludes(regions);
  cmd->add_option("--text", a->text, "A DNA sequence");
  cmd->add_option("-i,--input", a->input, "safetensors file with input_ids (B, L) or (L)");
  cmd->add_option("-o,--output", a->output, "OUT.safetensors or OUT.tsv ('-': TSV on stdout)")->required();
  cmd->add_option("--layer", a->layers, "Layers, comma-separated: -1 final (default), 0.. blocks")
      ->delimiter(',')
      ->check(CLI::Range(int64_t(-1), int64_t(1) << 20));
  cmd->add_option("--pool", a->pool, "mean, none or cls")->check(CLI::IsMember({"mean", "none", "cls"}));
  cmd->add_flag("--rc-average", a->rc_average, "Average with the reverse complement's states");
  cmd->add_flag("--keep-case", a->keep_case, "Do not upper-case soft-masked bases");
  add_device_option(cmd, a->device);
  cmd->callback([a] { run(*a); });
}

}  // namespace longseq::cli
