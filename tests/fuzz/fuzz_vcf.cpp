// VCF/BCF records through htslib into the variant scorer, as `longseq score-variants` reads them:
// header, records (errors checked as the command checks them), contig-name mapping, allele checks,
// window building from a fixed reference and a scoring run with a tiny random Mamba model.
#include "core/families/family.h"
#include "core/families/mamba_config.h"
#include "genomics/fasta.h"
#include "genomics/tokenizer.h"
#include "genomics/variant_scorer.h"
#include "tests/fuzz/fuzz.h"

#include <htslib/hts.h>
#include <htslib/vcf.h>

#include <fstream>
#include <memory>
#include <optional>

namespace {

struct Setup {
  std::unique_ptr<longseq::LanguageModel> model;
  longseq::DnaTokenizer tok = longseq::DnaTokenizer::standard();
  std::optional<longseq::FastaReader> fasta;
  std::optional<longseq::VariantScorer> scorer;
  Setup() {
    hts_set_log_level(HTS_LOG_OFF);
    const auto fa = longseq::fuzz::scratch() / "ref.fa";
    std::ofstream(fa) << ">1\nACGTACGGTTCAGCATTAGCCATAGGATCCAGTACNNNNACGTTGCA\n>chr2\nGGCATTACGATCAGCTAGCTAGGACT\n>MT\nACGT\n";
    fasta.emplace(longseq::FastaReader::open(fa));
    longseq::MambaConfig c;
    c.d_model = 8, c.n_layer = 1, c.vocab_size = 12, c.padded_vocab = 16, c.d_inner = 16, c.dt_rank = 1;
    model = longseq::new_model_from_json(longseq::mamba_config_json(c), 1);
    scorer.emplace(*model, tok, *fasta, longseq::ScoreOptions{.window = 16});
  }
};

void score_file(const std::filesystem::path& path, Setup& s) {
  htsFile* in = hts_open(path.c_str(), "r");
  if (!in) return;
  bcf_hdr_t* hdr = nullptr;
  bcf1_t* rec = bcf_init();
  try {
    if (hts_get_format(in)->category == variant_data && (hdr = bcf_hdr_read(in))) {
      for (int n = 0; n < 10000 && bcf_read(in, hdr, rec) == 0; ++n) {
        if (rec->errcode & ~(BCF_ERR_CTG_UNDEF | BCF_ERR_TAG_UNDEF)) break;
        bcf_unpack(rec, BCF_UN_STR);
        if (rec->pos < 0 || rec->n_allele < 1 || rec->d.allele[0][0] == '.') break;
        const std::string contig = bcf_seqname_safe(hdr, rec), mapped = longseq::map_contig_name(*s.fasta, contig);
        longseq::Site site{mapped.empty() ? contig : mapped, rec->pos, rec->d.allele[0], {}};
        for (int i = 1; i < rec->n_allele; ++i) site.alts.emplace_back(rec->d.allele[i]);
        auto prepared = s.scorer->prepare(site);
        s.scorer->run(prepared);
      }
    }
  } catch (...) {
    bcf_destroy(rec);
    if (hdr) bcf_hdr_destroy(hdr);
    hts_close(in);
    throw;
  }
  bcf_destroy(rec);
  if (hdr) bcf_hdr_destroy(hdr);
  hts_close(in);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Setup setup;
  const auto path = longseq::fuzz::write_input("in.vcf", data, size);
  return longseq::fuzz::run_one([&] { score_file(path, setup); });
}
