// DNA character tokenizer with the vocabulary of the released character-level DNA models (specials
// 0-6, A=7 C=8 G=9 T=10 N=11), shared by every DNA model longseq runs or trains. A model folder may override the mapping
// with a "longseq_tokenizer" object in config.json: {"type": "char", "vocab": {"A": 0, ...}, "unk": "N"};
// Evo 2's configs ("tokenizer_type": "CharLevelTokenizer") select the byte-level ids.
#pragma once

#include "core/config.h"

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace longseq {

struct TokenizeStats {
  int64_t bases = 0;
  int64_t soft_masked = 0;  // lowercase bases upper-cased
  int64_t ambiguous = 0;    // IUPAC codes other than ACGTN mapped to N
  int64_t unknown = 0;      // other characters mapped to the unknown id
};

class DnaTokenizer {
 public:
  // The released char tokenizers' [MASK] id (HyenaDNA, Caduceus): masked-LM training and scoring.
  static constexpr int64_t kMaskId = 3;
  // The released models' ids (above).
  static DnaTokenizer standard();
  // Evo 2's byte-level ids (vortex's CharLevelTokenizer: a base's id is its byte, 'A' = 65); other
  // IUPAC codes and unknown characters map to 'N' as for every model here.
  static DnaTokenizer bytes();
  // From config.json's "longseq_tokenizer" when present, bytes() for "tokenizer_type":
  // "CharLevelTokenizer" (Evo 2), else standard(). Throws naming the key when the mapping is invalid
  // or does not fit `vocab_size`.
  static DnaTokenizer from_config(const Config& config, int64_t vocab_size);

  // keep_case: lowercase (soft-masked) bases map to the unknown id instead of being upper-cased.
  void set_keep_case(bool keep) { keep_case_ = keep; }
  int64_t id(char base, TokenizeStats* stats = nullptr) const;
  // Fills out[0..seq.size()) with ids.
  void encode(std::string_view seq, int64_t* out, TokenizeStats* stats = nullptr) const;
  // Base letter of an id ('?' for specials).
  char base(int64_t id) const;
  int64_t max_id() const;

 private:
  std::array<int64_t, 256> map_{};
  std::array<char, 256> inverse_{};
  int64_t unk_ = 6;
  int64_t n_id_ = 11;
  bool keep_case_ = false;
};

}  // namespace longseq
