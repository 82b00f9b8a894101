// `longseq embed`: a model's hidden states for DNA regions, a literal sequence or token ids, per
// position or pooled, for every family (the features of TraitGym-style probes and of Caduceus's
// variant-effect recipe). Every family runs through LanguageModel::stream_hidden and the states are
// pooled as they arrive, so a family that streams (Mamba) holds one chunk of a region at a time,
// read from the FASTA as it goes: a whole chromosome embeds in the memory of a chunk. Regions run in
// parallel over threads and are written in input order, so the output does not depend on --threads;
// the output file is written whole or not at all.
#include "apps/longseq/commands.h"
#include "apps/longseq/model_args.h"
#include "core/error.h"
#include "core/fileio.h"
#include "core/families/family.h"
#include "core/models/lm.h"
#include "core/models/windows.h"
#include "core/progress.h"
#include "core/safetensors.h"
#include "core/threads.h"
#include "genomics/fasta.h"
#include "genomics/tokenizer.h"
#include "genomics/variant_scorer.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <mutex>
#include <optional>
#include <sstream>

namespace longseq::cli {

namespace {

struct EmbedArgs {
  std::string model, fasta, regions, regions_file, text, input, output, pool = "mean", device = "cpu";
  std::vector<int64_t> layers = {-1};
  int64_t chunk = 8192, window = 0, context = -1;  // context -1: not given
  bool rc_average = false, keep_case = false;
};

// One input sequence: its name, and its token ids in memory (--text, -i) or a FASTA region read
// chunk by chunk as it streams (a whole contig is never held as ids).
struct Item {
  std::string name;
  int64_t length = 0;
  std::vector<int64_t> ids;  // empty for a FASTA region
  Region region;             // resolved
};

std::vector<int64_t> encode(const DnaTokenizer& tok, const std::string& bases) {
  std::vector<int64_t> ids(bases.size());
  tok.encode(bases, ids.data());
  return ids;
}

Item in_memory(std::string name, std::vector<int64_t> ids) {
  const auto L = int64_t(ids.size());
  return Item{.name = std::move(name), .length = L, .ids = std::move(ids), .region = {}};
}

std::vector<BedRegion> fasta_regions(const EmbedArgs& a, const FastaReader& fasta) {
  if (!a.regions_file.empty()) return read_bed(a.regions_file);
  std::vector<BedRegion> regions;
  const auto add = [&](Region r, std::string name) {
    regions.emplace_back();
    regions.back().region = std::move(r);
    regions.back().name = std::move(name);
  };
  if (!a.regions.empty()) {
    std::stringstream ss(a.regions);
    for (std::string r; std::getline(ss, r, ',');)
      if (!r.empty()) add(parse_region(r), r);
  } else {
    for (const auto& c : fasta.contigs()) add(Region{c, 0, -1}, c);
  }
  return regions;
}

std::vector<Item> read_items(const EmbedArgs& a, const DnaTokenizer& tok, const FastaReader* fasta) {
  std::vector<Item> items;
  if (!a.text.empty()) {
    items.push_back(in_memory("text", encode(tok, a.text)));
  } else if (!a.input.empty()) {
    const auto f = SafetensorsFile::open(a.input);
    LS_CHECK(f.contains("input_ids"), "{}: no 'input_ids' tensor (write the ids as input_ids, shape (B, L) or (L))", a.input);
    Tensor ids = f.view("input_ids").to(DType::I64);
    if (ids.dim() == 1) ids = ids.unsqueeze(0);
    LS_CHECK(ids.dim() == 2, "{}: input_ids has shape {}; expected (B, L) or (L)", a.input, shape_str(ids.shape()));
    for (int64_t b = 0; b < ids.size(0); ++b) {
      const Tensor row = ids.select(0, b).contiguous();
      items.push_back(in_memory(fmt::format("row{}", b), std::vector<int64_t>(row.data<int64_t>(), row.data<int64_t>() + row.numel())));
    }
  } else {
    for (const BedRegion& r : fasta_regions(a, *fasta)) {
      const Region g = fasta->resolve(r.region);
      items.push_back(Item{.name = r.name.empty() ? fmt::format("{}:{}-{}", g.contig, g.start + 1, g.end) : r.name,
                           .length = g.end - g.start, .ids = {}, .region = g});
    }
  }
  for (const Item& it : items) LS_CHECK(it.length > 0, "{}: an empty sequence has no embedding (check the region)", it.name);
  return items;
}

// The token ids of an item, a chunk at a time, of either strand. FASTA reads are serialised (one
// htslib faidx handle is not safe to share between threads).
class IdReader {
 public:
  IdReader(const DnaTokenizer& tok, const FastaReader* fasta, int64_t vocab) : tok_(tok), fasta_(fasta) {
    for (int64_t id = 0; id < vocab; ++id) {  // ids without a base letter (specials) are their own complement
      const char b = tok.base(id);
      complement_.push_back(b == '?' ? id : encode(tok, reverse_complement(std::string(1, b)))[0]);
    }
  }
  // ids[i] = token start + i of the item (rc: of its reverse complement).
  void read(const Item& it, int64_t start, bool rc, Tensor& ids) const {
    const int64_t n = ids.size(0), L = it.length;
    int64_t* out = ids.data<int64_t>();
    if (!it.ids.empty()) {
      for (int64_t i = 0; i < n; ++i) out[i] = rc ? complement_[size_t(it.ids[size_t(L - 1 - start - i)])] : it.ids[size_t(start + i)];
      return;
    }
    const int64_t from = rc ? it.region.end - start - n : it.region.start + start;
    std::string bases;
    {
      const std::lock_guard lock(fasta_mutex_);
      bases = fasta_->fetch(it.region.contig, from, from + n);
    }
    tok_.encode(rc ? reverse_complement(bases) : bases, out);
  }

 private:
  const DnaTokenizer& tok_;
  const FastaReader* fasta_;
  std::vector<int64_t> complement_;
  mutable std::mutex fasta_mutex_;
};

// One layer's states pooled as they arrive, chunk by chunk, from one strand or both (--rc-average).
// mean: over the positions (and strands); cls: the one position that has seen the whole window (the
// last for a causal model, the first for a bidirectional one), averaged over the strands; none: every
// position, a reverse-complement row averaged into the sequence's position it mirrors.
class Pooled {
 public:
  Pooled(const std::string& mode, int64_t L, int64_t d, bool causal) : mode_(mode), L_(L), d_(d), cls_row_(causal ? L - 1 : 0) {
    if (mode_ == "none")
      rows_ = Tensor::empty({L, d});
    else
      sum_.assign(size_t(d), 0.0);
  }
  // rows: states of positions [start, start + rows) of the sequence (rc: of its reverse complement,
  // whose position t is the sequence's L - 1 - t; it arrives after the sequence's own pass).
  void add(int64_t start, const Tensor& rows, bool rc) {
    const float* r = rows.data<float>();
    for (int64_t i = 0; i < rows.size(0); ++i) {
      const int64_t t = start + i;
      const float* row = r + i * d_;
      if (mode_ == "none") {
        float* dst = rows_.data<float>() + (rc ? L_ - 1 - t : t) * d_;
        for (int64_t j = 0; j < d_; ++j) dst[j] = rc ? 0.5f * (dst[j] + row[j]) : row[j];
      } else if (mode_ == "mean" || t == cls_row_) {
        for (int64_t j = 0; j < d_; ++j) sum_[size_t(j)] += double(row[j]);
      }
    }
  }
  Tensor result(int strands) const {
    if (mode_ == "none") return rows_;
    const double n = double(strands) * (mode_ == "mean" ? double(L_) : 1.0);
    std::vector<float> out(static_cast<size_t>(d_));
    for (int64_t j = 0; j < d_; ++j) out[size_t(j)] = float(sum_[size_t(j)] / n);
    return Tensor::from_vector(out, {1, d_});
  }

 private:
  std::string mode_;
  int64_t L_, d_, cls_row_;
  Tensor rows_;
  std::vector<double> sum_;
};

class Embedder {
 public:
  Embedder(const EmbedArgs& a, const LanguageModel& model, const IdReader& reader) : a_(a), model_(model), reader_(reader) {
    for (int64_t l : a.layers) {
      LS_CHECK(l >= -1 && l < model.n_layer(), "--layer {}: the model has blocks 0..{} (-1: the final normalised states)", l,
               model.n_layer() - 1);
      blocks_.push_back(l < 0 ? model.n_layer() : l);
    }
  }
  // Per requested layer, the (L, d) states of the item, or (1, d) pooled.
  std::vector<Tensor> run(const Item& item) const {
    const int64_t window = a_.window > 0 ? a_.window : model_.max_length();  // 0: no maximum
    const bool windowed = window > 0 && item.length > window;
    LS_CHECK(!windowed || a_.context >= 0,
             "{}: a sequence of {} tokens exceeds the model's window {}: add --context C (0 <= C < {}) to run it in windows "
             "overlapping by C tokens, or embed shorter regions", item.name, item.length, window, window);
    std::vector<Pooled> pools;
    for (size_t k = 0; k < blocks_.size(); ++k) pools.emplace_back(a_.pool, item.length, model_.d_model(), model_.causal());
    const int strands = a_.rc_average ? 2 : 1;
    for (int strand = 0; strand < strands; ++strand) {
      const bool rc = strand == 1;
      const IdSource ids = [&](int64_t start, Tensor& part) { reader_.read(item, start, rc, part); };
      const HiddenSink sink = [&](int64_t start, std::span<const Tensor> states) {
        for (size_t k = 0; k < pools.size(); ++k) pools[k].add(start, states[k], rc);
      };
      if (windowed)
        stream_hidden_windowed(model_, item.length, ids, window, a_.context, a_.chunk, blocks_, sink);
      else
        model_.stream_hidden(item.length, ids, a_.chunk, blocks_, sink);
    }
    std::vector<Tensor> out;
    for (const Pooled& p : pools) out.push_back(p.result(strands));
    return out;
  }

 private:
  const EmbedArgs& a_;
  const LanguageModel& model_;
  const IdReader& reader_;
  std::vector<int64_t> blocks_;  // stream_hidden's numbering: n_layer() is the final state
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
  std::optional<FastaReader> fasta;
  if (!a.fasta.empty()) fasta.emplace(FastaReader::open(a.fasta));
  const std::vector<Item> items = read_items(a, tok, fasta ? &*fasta : nullptr);
  const IdReader reader(tok, fasta ? &*fasta : nullptr, model->vocab_size());
  const Embedder embedder(a, *model, reader);
  std::vector<std::vector<Tensor>> out(items.size());
  Progress progress("embed", int64_t(items.size()), "sequences");
  const int64_t n = int64_t(items.size()), batch = 4 * int64_t(num_threads());
  for (int64_t b0 = 0; b0 < n; b0 += batch) {  // progress is drawn from this thread, between batches
    const int64_t rows = std::min(batch, n - b0);
    for_blocks(rows, 1, [&](int64_t i, int64_t, int) { out[size_t(b0 + i)] = embedder.run(items[size_t(b0 + i)]); });
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
      "(rows put back in the sequence's order; with --pool cls, each strand's own cls row); for Caduceus-PS this is its RC-invariant "
      "embedding. A family that streams (Mamba) runs a region --chunk tokens at a time, so a whole chromosome's pooled embedding "
      "needs the memory of one chunk. safetensors output: pooled, one "
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
  cmd->add_option("--chunk", a->chunk, "Tokens per streamed chunk: a family that streams holds one chunk's states (1..65536)")
      ->check(CLI::Range(int64_t(1), int64_t(65536)));
  add_window_options(cmd, a->window, a->context, "gets its state");
  cmd->add_flag("--rc-average", a->rc_average, "Average with the reverse complement's states");
  cmd->add_flag("--keep-case", a->keep_case, "Do not upper-case soft-masked bases");
  add_device_option(cmd, a->device);
  cmd->callback([a] { run(*a); });
}

}  // namespace longseq::cli
