// Any length on a model with a maximum window (HyenaDNA's max_seq_len, Evo 2's 8 k): the sequence is
// run in windows of the model's length that overlap by `context` tokens, and each logits row is
// taken from the first window that holds it with at least `context` tokens before it, so every
// position is predicted once, from at least `context` bases of left context (the first window's rows
// from what precedes them). Windows start at 0, W - C, 2 (W - C), ...
#pragma once

#include "core/models/lm.h"

namespace longseq {

// The window starts for `length` tokens, windows of `window` tokens overlapping by `context`
// (0 <= context < window): one start (0) when length <= window.
std::vector<int64_t> window_starts(int64_t length, int64_t window, int64_t context);

// LanguageModel::stream_logits over any length: rows [0, length) handed to `sink` in order, each
// once, row t from the window of window_starts() that first contains it with `context` tokens
// before it. Each window's ids are pulled from `ids` from its own start (so starts go back by
// `context` from one window to the next). `window` <= the model's max_length() (0 = unlimited: any).
void stream_logits_windowed(const LanguageModel& model, int64_t length, const IdSource& ids, int64_t window, int64_t context,
                            int64_t chunk, const LogitsSink& sink);

// The same for LanguageModel::stream_hidden: each row of the blocks asked for handed out once, from
// the window that first holds it with `context` tokens before it.
void stream_hidden_windowed(const LanguageModel& model, int64_t length, const IdSource& ids, int64_t window, int64_t context,
                            int64_t chunk, std::span<const int64_t> blocks, const HiddenSink& sink);

}  // namespace longseq
