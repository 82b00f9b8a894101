#include "genomics/tokenizer.h"

#include "core/error.h"

#include <cctype>

namespace longseq {

namespace {
bool is_iupac_ambiguity(char c) {
  switch (c) {
    case 'R': case 'Y': case 'S': case 'W': case 'K': case 'M': case 'B': case 'D': case 'H': case 'V':
      return true;
    default:
      return false;
  }
}
}  // namespace

DnaTokenizer DnaTokenizer::standard() {
  DnaTokenizer t;
  t.map_.fill(-1);
  t.inverse_.fill('?');
  const std::pair<char, int64_t> bases[] = {{'A', 7}, {'C', 8}, {'G', 9}, {'T', 10}, {'N', 11}};
  for (auto [c, id] : bases) {
    t.map_[static_cast<unsigned char>(c)] = id;
    t.inverse_[size_t(id)] = c;
  }
  t.unk_ = 6;
  t.n_id_ = 11;
  return t;
}

DnaTokenizer DnaTokenizer::bytes() {
  DnaTokenizer t;
  t.map_.fill(-1);
  t.inverse_.fill('?');
  for (char c : {'A', 'C', 'G', 'T', 'N'}) {
    t.map_[static_cast<unsigned char>(c)] = static_cast<unsigned char>(c);
    t.inverse_[static_cast<unsigned char>(c)] = c;
  }
  t.unk_ = t.n_id_ = 'N';
  return t;
}

DnaTokenizer DnaTokenizer::from_config(const Config& config, int64_t vocab_size) {
  const auto* spec = config.find("longseq_tokenizer");
  if (!spec && config.get_string("tokenizer_type", "") == "CharLevelTokenizer") {
    if (vocab_size < 256) config.invalid("vocab_size", "is too small for a byte-level tokenizer (need >= 256)");
    return bytes();
  }
  if (!spec) {
    DnaTokenizer t = standard();
    if (t.max_id() >= vocab_size)
      config.invalid("vocab_size", "is too small for the DNA character ids (need > 11); add a \"longseq_tokenizer\" mapping");
    return t;
  }
  if (!spec->is_object() || spec->value("type", "") != "char" || !spec->contains("vocab") || !(*spec)["vocab"].is_object())
    config.invalid("longseq_tokenizer", "must be {\"type\": \"char\", \"vocab\": {\"A\": id, ...}, \"unk\": \"N\"}");
  DnaTokenizer t;
  t.map_.fill(-1);
  t.inverse_.fill('?');
  for (const auto& [k, v] : (*spec)["vocab"].items()) {
    if (k.size() != 1 || !v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= vocab_size || v.get<int64_t>() > 255)
      config.invalid("longseq_tokenizer.vocab", "entries must map one character to an id in [0, vocab_size)");
    t.map_[static_cast<unsigned char>(k[0])] = v.get<int64_t>();
    t.inverse_[size_t(v.get<int64_t>())] = k[0];
  }
  const std::string unk = spec->value("unk", "N");
  if (unk.size() != 1 || t.map_[static_cast<unsigned char>(unk[0])] < 0)
    config.invalid("longseq_tokenizer.unk", "must be one character present in the vocab");
  t.unk_ = t.n_id_ = t.map_[static_cast<unsigned char>(unk[0])];
  if (t.map_['N'] >= 0) t.n_id_ = t.map_['N'];
  return t;
}

int64_t DnaTokenizer::id(char c, TokenizeStats* stats) const {
  if (stats) ++stats->bases;
  const int64_t direct = map_[static_cast<unsigned char>(c)];
  if (direct >= 0) return direct;
  if (std::islower(static_cast<unsigned char>(c))) {
    const char up = char(std::toupper(static_cast<unsigned char>(c)));
    if (!keep_case_) {
      if (stats) ++stats->soft_masked;
      if (map_[static_cast<unsigned char>(up)] >= 0) return map_[static_cast<unsigned char>(up)];
      if (is_iupac_ambiguity(up)) {
        if (stats) ++stats->ambiguous;
        return n_id_;
      }
    }
    if (stats) ++stats->unknown;
    return unk_;
  }
  if (is_iupac_ambiguity(c)) {
    if (stats) ++stats->ambiguous;
    return n_id_;
  }
  if (stats) ++stats->unknown;
  return unk_;
}

void DnaTokenizer::encode(std::string_view seq, int64_t* out, TokenizeStats* stats) const {
  for (size_t i = 0; i < seq.size(); ++i) out[i] = id(seq[i], stats);
}

char DnaTokenizer::base(int64_t id) const { return id >= 0 && id < 256 ? inverse_[size_t(id)] : '?'; }

int64_t DnaTokenizer::max_id() const {
  int64_t m = 0;
  for (int64_t v : map_) m = std::max(m, v);
  return std::max(m, unk_);
}

}  // namespace longseq
