// `longseq train`: DNA language models from a FASTA (--task lm) and sequence classifiers from a TSV or
// class folders (--task classify), from scratch (architecture flags) or from a model folder
// (--init: continue pretraining, or fine-tune an LM with a new classifier head). Writes checkpoints,
// metrics and OUT/model, a model folder that every other subcommand loads.
#include "apps/longseq/commands.h"
#include "apps/longseq/options.h"
#include "core/device/ops.h"
#include "apps/longseq/model_args.h"
#include "core/error.h"
#include "core/fileio.h"
#include "core/model_dir.h"
#include "core/families/family.h"
#include "core/threads.h"
#include "core/train/trainer.h"
#include "audio/audio_dataset.h"
#include "core/data/split.h"
#include "genomics/dna_tasks.h"
#include "genomics/markov.h"

#include <chrono>
#include <numbers>
#include <numeric>
#include <optional>
#include <spdlog/spdlog.h>

namespace longseq::cli {

namespace {

struct TrainArgs {
  std::string task = "lm", reference, data, val_data, init, config, output, metrics, device = "cpu";
  ModelArgs model;
  train::TrainOptions opt;
  int64_t length = 1024, val_windows = 256;
  double val_fraction = 0.2;
  std::vector<std::string> contigs, val_contigs;
  bool no_rc = false, recompute = false, baseline = false, force = false;
  // audio-classify
  int sample_rate = 16000;
  double clip_seconds = 2.0;
  std::vector<int64_t> pool = {160};  // 10 ms frames at 16 kHz
  int64_t filters = 64, frame = 400;  // 64 mel bands over 25 ms frames: the measured best (docs/PERFORMANCE.md)
  double level_rms = 0.1;
  bool no_augment = false, learn_filters = false, band_norm = false;
  AudioAugment augment;
  std::vector<std::string> extensions = default_audio_extensions();
};

// audio: the pooling stages a new model gets (an --init model keeps its own).
// train_length > 0: a new language model is sized for windows of that length.
std::unique_ptr<train::GradModel<float>> build_model(const TrainArgs& a, const std::vector<std::string>& labels,
                                                     const std::optional<train::AudioSpec>& audio = std::nullopt,
                                                     int64_t train_length = 0) {
  std::unique_ptr<train::GradModel<float>> m;
  if (!a.init.empty()) {
    m = train::load_grad_model<float>(a.init);
    spdlog::info("initialised from {} ({})", a.init, m->family());
    LS_CHECK(m->audio().has_value() == audio.has_value(), "--init {}: {} model for a {} task", a.init,
             m->audio() ? "a raw-audio" : "a token", audio ? "raw-audio" : "token");
  } else {
    const auto lm = a.config.empty() ? new_model(a.model, train_length, a.opt.seed) : new_model_from_config(a.config, a.opt.seed);
    spdlog::info("new model: {}", describe_model(*lm));
    m = train::make_grad_model<float>(*lm);
    if (audio) m->set_audio(*audio, a.opt.seed);
  }
  if (!labels.empty()) {
    if (m->head() == train::Head::Classifier) {
      LS_CHECK(m->labels() == labels, "--init {} is a classifier for other labels ({}) than the data's ({})", a.init,
               fmt::join(m->labels(), ","), fmt::join(labels, ","));
    } else {
      m->add_classifier(labels);
    }
  }
  m->set_recompute(a.recompute);
  if (a.device == "cuda") m->set_device(make_cuda_ops());
  return m;
}

int64_t parameter_count(const train::GradModel<float>& m) {
  int64_t n = 0;
  for (const auto& p : m.params().list()) n += p.trainable ? p.numel : 0;
  return n;
}

void report(const train::TrainSummary& s, const train::GradModel<float>& m, int64_t length, bool cls) {
  spdlog::info("trained {} steps in {:.1f} s ({:.0f} tokens/s); model: {}", s.steps_done, s.seconds, s.tokens_per_second,
               s.model_dir.string());
  if (cls)
    spdlog::info("validation: accuracy {:.4f}, MCC {:.4f} on {} sequences", s.final_eval.accuracy, s.final_eval.mcc, s.final_eval.count);
  else if (s.final_eval.count > 0)
    spdlog::info("validation: {:.4f} bits per predicted base over {} bases", s.final_eval.bits, s.final_eval.count);
  spdlog::info("activation memory: {:.1f} KiB per token ({:.1f} MiB per sequence of {})",
               double(m.activation_floats_per_token()) * 4 / 1024, double(m.activation_floats_per_token() * length) * 4 / (1 << 20),
               length);
}

// The ids `m` reads: its config's tokenizer (Evo 2's bytes, a "longseq_tokenizer" mapping, else the
// standard ids), so training feeds it what loglik, score-variants and embed will.
DnaTokenizer model_tokenizer(const train::GradModel<float>& m) {
  return DnaTokenizer::from_config(Config::parse(m.config_json().dump(), "the model's config"), m.vocab_size());
}

// A DNA language model (made by build_model) on `task`: next base (a causal model) or masked bases (a
// bidirectional one, which would see the answer to a next-base task); checked, trained and reported.
train::TrainSummary train_dna_lm(const TrainArgs& a, std::unique_ptr<train::GradModel<float>> model, const TrainTask& task, bool masked) {
  const char* name = masked ? "mlm" : "lm";
  LS_CHECK(model->head() == train::Head::LanguageModel, "--task {} cannot train a classifier checkpoint ({})", name, a.init);
  LS_CHECK(model->causal() != masked, "--task {} trains {}, but the {} model is {}; train it with --task {}", name,
           masked ? "a bidirectional model on masked bases" : "next-base prediction", model->family(),
           masked ? "causal" : "bidirectional (it would see the answer)", masked ? "lm" : "mlm");
  model->set_train_length(a.length);
  spdlog::info("{} trainable parameters; {} steps of {} windows of {} bases", parameter_count(*model), a.opt.steps, a.opt.batch,
               a.length);
  const auto summary = train::train_model(*model, task, a.opt);
  report(summary, *model, a.length, false);
  return summary;
}

void run_lm(TrainArgs& a) {
  LS_CHECK(!a.reference.empty(), "--task lm needs a FASTA (-r/--reference)");
  auto model = build_model(a, {}, std::nullopt, a.length);
  const DnaTokenizer tokenizer = model_tokenizer(*model);
  DnaCorpusOptions co{a.contigs, a.val_fraction, a.val_contigs};
  const DnaCorpus corpus = DnaCorpus::load(a.reference, tokenizer, co);
  const DnaLmTask task(corpus, a.length, !a.no_rc, a.val_windows);
  spdlog::info("data: {} training bases, {} validation bases in N-free runs; {} validation windows of {}", corpus.train_bases(),
               corpus.val_bases(), task.validation().size(), a.length);
  if (a.baseline) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto scores = markov_baselines(corpus, 8, task.validation_windows());
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (const auto& s : scores) spdlog::info("Markov order {}: {:.4f} bits/base", s.order, s.bits_per_base);
    spdlog::info("Markov orders 0..8 fitted and scored in {:.1f} s", secs);
  }
  train_dna_lm(a, std::move(model), task, false);
}

// Held-out masked accuracy and bits per masked base of the trained model on the validation set.
void report_masked(const std::filesystem::path& model_dir, const std::vector<Example>& val) {
  const auto model = load_language_model(ModelDir::open(model_dir));
  std::vector<int64_t> right(val.size(), 0), count(val.size(), 0);
  std::vector<double> bits(val.size(), 0.0);
  for_blocks(int64_t(val.size()), 1, [&](int64_t i, int64_t, int) {
    const Example& e = val[size_t(i)];
    const Tensor logits = model->forward(Tensor::from_ids(e.ids), {}).logits;
    const int64_t V = logits.size(1);
    for (size_t t = 0; t < e.ids.size(); ++t) {
      if (e.targets[t] < 0) continue;
      const float* row = logits.data<float>() + int64_t(t) * V;
      right[size_t(i)] += std::max_element(row, row + V) - row == e.targets[t];
      bits[size_t(i)] -= sum_next_logprobs(logits.slice(0, int64_t(t), 1), &e.targets[t], 1) / std::numbers::ln2;
      ++count[size_t(i)];
    }
  });
  const double n = double(std::accumulate(count.begin(), count.end(), int64_t(0)));
  spdlog::info("held-out masked bases: accuracy {:.4f}, {:.4f} bits per masked base over {:.0f} masked bases",
               double(std::accumulate(right.begin(), right.end(), int64_t(0))) / std::max(n, 1.0),
               std::accumulate(bits.begin(), bits.end(), 0.0) / std::max(n, 1.0), n);
}

void run_mlm(TrainArgs& a) {
  LS_CHECK(!a.reference.empty(), "--task mlm needs a FASTA (-r/--reference)");
  auto model = build_model(a, {}, std::nullopt, a.length);
  const DnaTokenizer tokenizer = model_tokenizer(*model);
  DnaCorpusOptions co{a.contigs, a.val_fraction, a.val_contigs};
  const DnaCorpus corpus = DnaCorpus::load(a.reference, tokenizer, co);
  const DnaMlmTask task(corpus, tokenizer, a.length, !a.no_rc, a.val_windows, DnaTokenizer::kMaskId);
  spdlog::info("data: {} training bases, {} validation bases in N-free runs; {} validation windows of {}, 15% masked (80% [MASK], "
               "10% a random base, 10% kept)",
               corpus.train_bases(), corpus.val_bases(), task.validation().size(), a.length);
  if (a.baseline) {
    const auto scores = symmetric_markov_baselines(corpus, 5, task.validation());
    for (const auto& s : scores) spdlog::info("symmetric Markov, {} bases each side: {:.4f} bits per masked base", s.order, s.bits_per_base);
  }
  const auto summary = train_dna_lm(a, std::move(model), task, true);
  report_masked(summary.model_dir, task.validation());
}

void run_classify(TrainArgs& a) {
  LS_CHECK(!a.data.empty(), "--task classify needs --data (a TSV 'sequence<TAB>label' or a folder of class folders)");
  auto train_set = read_labelled_sequences(a.data);
  std::vector<LabelledSequence> val_set;
  if (!a.val_data.empty())
    val_set = read_labelled_sequences(a.val_data);
  else
    split_validation(train_set, val_set, a.val_fraction, a.opt.seed);
  const auto labels = label_set(train_set);
  LS_CHECK(labels.size() >= 2, "{}: only one label ('{}'); a classifier needs at least two", a.data, labels.front());
  auto model = build_model(a, labels);
  const DnaClassifyTask task(train_set, val_set, model->labels(), model_tokenizer(*model), a.length, !a.no_rc);
  spdlog::info("data: {} training and {} validation sequences, {} classes ({})", train_set.size(), val_set.size(), labels.size(),
               fmt::join(labels, ", "));
  spdlog::info("{} trainable parameters; {} steps of {} sequences", parameter_count(*model), a.opt.steps, a.opt.batch);
  const auto summary = train::train_model(*model, task, a.opt);
  report(summary, *model, a.length, true);
}

void run_audio(TrainArgs& a) {
  LS_CHECK(!a.data.empty(), "--task audio-classify needs --data (a folder with one folder of recordings per class, or a CSV path,label[,start,end])");
  auto train_set = read_audio_clips(a.data, a.extensions);
  std::vector<AudioClip> val_set;
  if (!a.val_data.empty())
    val_set = read_audio_clips(a.val_data, a.extensions);
  else
    split_validation_by_label(train_set, val_set, a.val_fraction, a.opt.seed);
  const auto labels = labels_of(train_set);
  LS_CHECK(labels.size() >= 2, "{}: only one label ('{}'); a classifier needs at least two", a.data, labels.front());
  train::AudioSpec spec{.sample_rate = a.sample_rate, .clip_samples = 0, .pool = a.pool, .filters = a.filters, .frame = a.frame,
                        .learn_filters = a.learn_filters, .band_norm = a.band_norm, .level_rms = a.level_rms};
  const int64_t stride = spec.stride();
  spec.clip_samples = std::max<int64_t>(stride, int64_t(std::llround(a.clip_seconds * a.sample_rate / double(stride))) * stride);
  if (a.init.empty() && a.config.empty()) a.model.values["vocab"] = 256;  // mu-law codes
  a.augment.enabled = !a.no_augment;
  auto model = build_model(a, labels, spec);
  const train::AudioSpec& used = *model->audio();
  spdlog::info("decoding {} training and {} validation clips at {} Hz", train_set.size(), val_set.size(), used.sample_rate);
  const AudioClassifyTask task(train_set, val_set, model->labels(), int(used.sample_rate), used.clip_samples,
                               a.augment, used.level_rms);
  spdlog::info("data: {} classes ({}); clips of {} samples ({:.3f} s), pooling {} (stride {}){}", labels.size(), fmt::join(labels, ", "),
               used.clip_samples, double(used.clip_samples) / double(used.sample_rate), fmt::join(used.pool, "x"), used.stride(),
               used.filters > 0 ? fmt::format(", {} {} filterbank bands over {}-sample frames{}", used.learn_filters ? "learned" : "fixed",
                                              used.filters, used.frame, used.band_norm ? ", band means removed" : "")
                                : "");
  spdlog::info("{} trainable parameters; {} steps of {} clips", parameter_count(*model), a.opt.steps, a.opt.batch);
  const auto summary = train::train_model(*model, task, a.opt);
  report(summary, *model, used.clip_samples, true);
}

// Inputs this run reads, for the checks that no output replaces one.
std::vector<std::filesystem::path> input_files(const TrainArgs& a) {
  std::vector<std::filesystem::path> in;
  if (!a.reference.empty())
    for (const auto& p : with_suffixes(a.reference, {".fai", ".gzi"})) in.push_back(p);
  for (const auto& p : {a.data, a.val_data, a.config})
    if (!p.empty()) in.push_back(p);
  if (!a.init.empty())
    for (const auto& p : ModelDir::files(a.init)) in.push_back(p);
  return in;
}

// Before any work: OUT must be a folder (or new); a finished or started run in it is continued only
// with --resume and replaced only with --force; the metrics file must not be an input.
void check_output(const TrainArgs& a) {
  namespace fs = std::filesystem;
  const auto inputs = input_files(a);
  check_output_folder(a.output, inputs);
  const fs::path out(a.output);
  for (const auto& p : inputs) {  // training replaces OUT/model, OUT/checkpoint-* and the metrics file
    const fs::path rel = fs::weakly_canonical(p).lexically_relative(fs::weakly_canonical(out));
    const std::string top = rel.empty() ? "" : rel.begin()->string();
    LS_CHECK(top != "model" && !top.starts_with("checkpoint-") && top != "metrics.jsonl",
             "{} is inside {}/{}, which training replaces; copy it out first or choose another -o", p.string(), a.output, top);
  }
  std::error_code ec;
  const bool has_run = fs::exists(out / "latest", ec) || fs::exists(out / "model", ec);
  LS_CHECK(!has_run || a.opt.resume || a.force,
           "-o {} already holds a training run ({}); add --resume to continue it, --force to start over and replace it, or choose "
           "another folder",
           a.output, fs::exists(out / "model", ec) ? "a final model in model/" : "checkpoints");
  if (!a.metrics.empty()) check_output_file(a.metrics, inputs, "--metrics");
}

void run_task(TrainArgs& a) {
  if (a.task == "lm") return run_lm(a);
  if (a.task == "mlm") return run_mlm(a);
  if (a.task == "audio-classify") return run_audio(a);
  run_classify(a);
}

void run(TrainArgs& a) {
  namespace fs = std::filesystem;
  check_output(a);
  set_oom_hint("use a smaller --batch or --length, more --accumulate, or --recompute");
  a.opt.out_dir = a.output;
  a.opt.metrics = a.metrics;
  a.opt.run_info = {{"command", command_line()}, {"task", a.task}};
  std::error_code ec;
  const bool created = !fs::exists(a.output, ec);
  if (a.force && !a.opt.resume && !created) {  // start over: the old run's checkpoints and model go
    for (const auto& e : fs::directory_iterator(a.output))
      if (e.path().filename() == "latest" || e.path().filename() == "model" ||
          e.path().filename().string().starts_with("checkpoint-"))
        fs::remove_all(e.path());
  }
  try {
    run_task(a);
  } catch (...) {
    // A run that failed before its first checkpoint leaves nothing behind in a folder it created.
    if (created && !fs::exists(fs::path(a.output) / "latest", ec)) fs::remove_all(a.output, ec);
    throw;
  }
}

}  // namespace

void add_train(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  a->model.values = {{"d_model", 128}, {"n_layer", 2}};  // train's defaults where they differ from init's
  auto* cmd = app.add_subcommand(
      "train", "Train a DNA language model (--task lm: next base; --task mlm: masked bases, for bidirectional models), a sequence "
               "classifier (--task classify) or a raw-audio classifier (--task audio-classify)");
  cmd->add_option("--task", a->task, "lm, mlm, classify or audio-classify")->check(CLI::IsMember({"lm", "mlm", "classify", "audio-classify"}));
  cmd->add_option("-o,--output", a->output, "Output folder: checkpoints, metrics.jsonl, and the final model in OUT/model")->required();
  cmd->add_option("-r,--reference", a->reference, "lm, mlm: FASTA (plain or bgzipped) to train on");
  cmd->add_option("--contigs", a->contigs, "lm: contigs to use (default: all)")->delimiter(',');
  cmd->add_option("--val-fraction", a->val_fraction, "Held-out fraction: the end of each contig (lm) or of each class (classify)")
      ->check(finite_range(0.0, 0.9));
  cmd->add_option("--val-contig", a->val_contigs, "lm: hold out these whole contigs instead")->delimiter(',');
  cmd->add_option("--val-windows", a->val_windows, "lm: validation windows (fixed, evenly spread)")->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  cmd->add_option("--data", a->data, "classify: TSV 'sequence<TAB>label' or a folder of class folders (FASTA); audio-classify: class folders of recordings or a CSV path,label[,start,end]");
  cmd->add_option("--val-data", a->val_data, "classify: validation set in the same form (default: split from --data)");
  cmd->add_option("--sample-rate", a->sample_rate, "audio-classify: model sample rate (recordings are resampled to it)")
      ->check(CLI::Range(1000, 384000));
  cmd->add_option("--clip-seconds", a->clip_seconds, "audio-classify: clip length, up to 3600 s (rounded to the pooling stride)")
      ->check(finite_range(0.001, 3600.0));
  cmd->add_option("--pool", a->pool, "audio-classify: down-pooling factor (1 to 1024) entering each stage (n-layer splits evenly)")
      ->delimiter(',')
      ->check(CLI::Range(int64_t(1), int64_t(1024)));
  cmd->add_option("--filters", a->filters,
                  "audio-classify: front end of this many mel-spaced log-power bands over --frame-sample frames every pool[0] samples (0: embed the mu-law samples)")
      ->check(CLI::Range(0, 1024));
  cmd->add_option("--frame", a->frame, "audio-classify: filterbank frame length in samples (>= the first pool factor)")
      ->check(CLI::Range(1, 16384));
  cmd->add_option("--level-rms", a->level_rms, "audio-classify: scale every clip and window to this RMS before the model (0: as recorded)")
      ->check(finite_range(0.0, 1.0));
  cmd->add_flag("--band-norm", a->band_norm,
                "audio-classify: subtract each filterbank band's mean over the window (cancels microphone/channel colouring; for speech)");
  cmd->add_flag("--learn-filters", a->learn_filters, "audio-classify: train the filterbank too (default: keep its initial bands)");
  cmd->add_flag("--no-augment", a->no_augment, "audio-classify: no gain/shift/noise/speed/tilt augmentation");
  cmd->add_option("--augment-speed", a->augment.speed,
                  "audio-classify: speed (and pitch, formant) change up to this fraction; 0.15-0.2 mimics other speakers' vocal tracts")
      ->check(finite_range(0.0, 0.5));
  cmd->add_option("--ext", a->extensions, "audio-classify: file extensions read from class folders")->delimiter(',');
  cmd->add_option("--init", a->init, "Start from this model folder (pretrained LM or checkpoint) instead of a new model");
  add_model_options(cmd, a->model);
  cmd->add_option("--config", a->config, "New model with the architecture of this config.json (any family longseq can create) instead of the flags");
  cmd->add_option("--length,-L", a->length, "lm: window length in bases, up to 2^26; classify: crop longer sequences to this (0: never)")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 26));
  cmd->add_option("--steps", a->opt.steps, "Optimizer steps")->check(CLI::Range(int64_t(1), int64_t(1) << 40));
  cmd->add_option("--batch", a->opt.batch, "Sequences per step")->check(CLI::Range(int64_t(1), int64_t(1) << 16));
  cmd->add_option("--accumulate", a->opt.accumulate, "Micro-batches per step (gradient accumulation)")->check(CLI::Range(int64_t(1), int64_t(1) << 16));
  cmd->add_option("--lr", a->opt.adam.lr, "Peak learning rate, above 0 and at most 10")->check(finite_range(1e-12, 10.0));
  cmd->add_option("--warmup", a->opt.warmup, "Linear warmup steps")->check(CLI::Range(int64_t(0), int64_t(1) << 40));
  cmd->add_option("--min-lr-ratio", a->opt.min_lr_ratio, "Cosine floor as a fraction of --lr")->check(finite_range(0.0, 1.0));
  cmd->add_option("--weight-decay", a->opt.adam.weight_decay, "AdamW decay (weight matrices only), 0 to 10")->check(finite_range(0.0, 10.0));
  cmd->add_option("--beta2", a->opt.adam.beta2, "AdamW beta2")->check(finite_range(0.0, 1.0));
  cmd->add_option("--clip", a->opt.clip, "Gradient clipping: max global L2 norm (0: off)")->check(finite_range(0.0, 1e12));
  cmd->add_option("--seed", a->opt.seed, "Seed of initialisation, data order and augmentation");
  cmd->add_flag("--no-rc", a->no_rc, "No reverse-complement augmentation");
  cmd->add_flag("--recompute", a->recompute, "Recompute each layer's activations in the backward (less memory, ~1.3x time)");
  cli::add_device_option(cmd, a->device);
  cmd->add_option("--log-every", a->opt.log_every, "Steps between metric lines")->check(CLI::Range(int64_t(1), int64_t(1) << 40));
  cmd->add_option("--eval-every", a->opt.eval_every, "Steps between validations (0: at the end only)")->check(CLI::Range(int64_t(0), int64_t(1) << 40));
  cmd->add_option("--save-every", a->opt.save_every, "Steps between checkpoints (0: at the end only)")->check(CLI::Range(int64_t(0), int64_t(1) << 40));
  cmd->add_option("--keep", a->opt.keep_checkpoints, "Checkpoints kept (oldest removed)")->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  cmd->add_option("--metrics", a->metrics, "Metrics file, .jsonl or .csv (default OUT/metrics.jsonl)");
  cmd->add_flag("--resume", a->opt.resume, "Continue from the latest checkpoint in OUT (same options)");
  cmd->add_flag("--force", a->force, "Start over in an OUT that holds an earlier run (its checkpoints and model are removed)")
      ->excludes("--resume");
  cmd->add_option("--max-minutes", a->opt.max_minutes, "Stop after this many minutes, saving a checkpoint (0: no limit)")->check(finite_range(0.0, 1e7));
  cmd->add_flag("--baseline", a->baseline, "lm: also report order-0..8 Markov baselines on the validation windows; mlm: the symmetric ones (0..5 bases each side) on the masked bases");
  cmd->callback([a] { run(*a); });
}

}  // namespace longseq::cli
