// `longseq classify-audio`: labelled time segments for folders of recordings, with a raw-audio
// classifier trained by `longseq train --task audio-classify`. Each file is streamed window by
// window (bounded memory for hours of audio); windows are classified in batches across threads and
// written in file and time order, so the output does not depend on --threads or --batch. A file
// that cannot be decoded is reported and skipped; the run ends non-zero if any failed.
#include "apps/longseq/commands.h"
#include "apps/longseq/options.h"
#include "apps/longseq/model_args.h"
#include "core/device/ops.h"
#include "audio/audio_dataset.h"
#include "audio/audio_file.h"
#include "audio/windows.h"
#include "core/error.h"
#include "core/fileio.h"
#include "core/model_dir.h"
#include "core/progress.h"
#include "core/threads.h"
#include "core/train/grad_model.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <map>
#include <set>

namespace longseq::cli {

namespace {

namespace fs = std::filesystem;

struct AudioArgs {
  std::string model, output = ".", device = "cpu";
  std::vector<std::string> inputs, extensions = default_audio_extensions(), formats = {"csv"};
  bool recursive = false, combine = false, skip_existing = false, list_inputs = false;
  double window = 0, hop = 0, min_conf = 0;
  int64_t top_k = 1, batch = 16;
  int channel = -1;
};

struct Row {
  std::string file;
  double start, end;
  std::string label;
  double confidence;
};

bool has_ext(const fs::path& p, const std::vector<std::string>& exts) {
  std::string e = p.extension().string();
  if (e.empty()) return false;
  e.erase(0, 1);
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return std::find(exts.begin(), exts.end(), e) != exts.end();
}

void add_list(std::istream& in, std::vector<std::string>& out) {
  for (std::string line; std::getline(in, line);)
    if (!line.empty() && line[0] != '#') out.push_back(line);
}

// Files from the arguments: files as given, folders expanded (by extension), @list and - read as
// lists of paths. Sorted and de-duplicated so runs are reproducible.
std::vector<fs::path> expand_inputs(const AudioArgs& a) {
  std::vector<std::string> items;
  for (const auto& s : a.inputs) {
    if (s == "-") {
      add_list(std::cin, items);
    } else if (s.starts_with("@")) {
      std::ifstream in(s.substr(1));
      LS_CHECK(in, "{}: cannot read the list of inputs", s.substr(1));
      add_list(in, items);
    } else {
      items.push_back(s);
    }
  }
  std::set<fs::path> files;
  for (const auto& s : items) {
    const fs::path p(s);
    if (fs::is_directory(p)) {
      if (a.recursive) {
        for (const auto& f : fs::recursive_directory_iterator(p))
          if (f.is_regular_file() && has_ext(f.path(), a.extensions)) files.insert(f.path());
      } else {
        for (const auto& f : fs::directory_iterator(p))
          if (f.is_regular_file() && has_ext(f.path(), a.extensions)) files.insert(f.path());
      }
    } else {
      files.insert(p);  // named explicitly: tried whatever its extension (and reported if unreadable)
    }
  }
  LS_CHECK(!files.empty(), "no input recordings found (give files, folders{}, @list.txt or -)", a.recursive ? "" : " (--recursive to descend)");
  return {files.begin(), files.end()};
}

const char* extension_of(const std::string& format) {
  if (format == "csv") return ".csv";
  if (format == "json") return ".json";
  return ".selections.txt";  // Raven selection table
}

std::string render(const std::vector<Row>& rows, const std::string& format, bool with_file) {
  std::string s;
  if (format == "csv") {
    s = "file,start,end,label,confidence\n";
    for (const auto& r : rows) s += fmt::format("{},{:.3f},{:.3f},{},{:.4f}\n", r.file, r.start, r.end, r.label, r.confidence);
  } else if (format == "json") {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& r : rows)
      j.push_back({{"file", r.file}, {"start", r.start}, {"end", r.end}, {"label", r.label}, {"confidence", r.confidence}});
    s = j.dump(1) + "\n";
  } else {
    s = "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\tLabel\tConfidence";
    s += with_file ? "\tBegin File\n" : "\n";
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      s += fmt::format("{}\tSpectrogram 1\t1\t{:.3f}\t{:.3f}\t0\t0\t{}\t{:.4f}", i + 1, r.start, r.end, r.label, r.confidence);
      s += with_file ? "\t" + fs::path(r.file).filename().string() + "\n" : "\n";
    }
  }
  return s;
}

void write_tables(const std::vector<Row>& rows, const fs::path& stem, const AudioArgs& a, bool with_file) {
  for (const auto& f : a.formats) write_text_atomic(stem.string() + extension_of(f), render(rows, f, with_file));
}

// Per-file tables go to OUT/<file stem>.<ext>; their presence is what --skip-existing checks.
fs::path per_file_stem(const AudioArgs& a, const fs::path& file) { return fs::path(a.output) / file.stem(); }

struct Classifier {
  std::unique_ptr<train::GradModel<float>> proto;
  std::vector<std::unique_ptr<train::GradModel<float>>> workers;
  int rate = 0;
  int64_t window = 0, hop = 0;
};

// Classifies a batch of windows in parallel; rows appended in window order.
void classify_batch(Classifier& c, const AudioArgs& a, const std::string& file, std::vector<std::vector<int64_t>>& ids,
                    std::vector<SampleRange>& ranges, std::vector<Row>& rows) {
  std::vector<std::vector<double>> probs(ids.size());
  std::string error;
#pragma omp parallel for schedule(dynamic, 1)
  for (size_t i = 0; i < ids.size(); ++i) {
    try {
      probs[i] = train::class_probabilities(*c.workers[size_t(thread_slot())], ids[i]);
      LS_CHECK(std::all_of(probs[i].begin(), probs[i].end(), [](double p) { return std::isfinite(p); }),
               "{}: window {:.3f}-{:.3f} s got non-finite class probabilities (an overflow in the model)", file,
               double(ranges[i].start) / c.rate, double(ranges[i].end) / c.rate);
    } catch (const std::exception& e) {
#pragma omp critical
      if (error.empty()) error = e.what();
    }
  }
  if (!error.empty()) throw Error(error);
  const auto& labels = c.proto->labels();
  for (size_t i = 0; i < ids.size(); ++i) {
    std::vector<size_t> order(labels.size());
    for (size_t k = 0; k < order.size(); ++k) order[k] = k;
    std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return probs[i][x] > probs[i][y]; });
    for (int64_t k = 0; k < std::min<int64_t>(a.top_k, int64_t(order.size())); ++k) {
      const double p = probs[i][order[size_t(k)]];
      if (p < a.min_conf) break;
      rows.push_back({file, double(ranges[i].start) / c.rate, double(ranges[i].end) / c.rate, labels[order[size_t(k)]], p});
    }
  }
  ids.clear();
  ranges.clear();
}

// The window used on one file: --window, but never longer than the recording (rounded up to the
// pooling stride) unless that is shorter than the model's clip. A window past the end would only be
// padding, and its memory grows with the window, not with the recording.
int64_t file_window(const Classifier& c, const fs::path& file, int channel) {
  const AudioInfo info = AudioReader::open(file, channel).info();
  const int64_t stride = c.proto->audio()->stride();
  const double samples = double(info.frames) * double(c.rate) / double(std::max(info.sample_rate, 1));
  const int64_t covering = (int64_t(std::ceil(samples)) + stride - 1) / stride * stride;
  return std::min(c.window, std::max(covering, c.proto->audio()->clip_samples));
}

std::vector<Row> classify_file(Classifier& c, const AudioArgs& a, const fs::path& file, Progress& progress) {
  std::vector<Row> rows;
  std::vector<std::vector<int64_t>> ids;
  std::vector<SampleRange> ranges;
  const int64_t window = file_window(c, file, a.channel);
  const int64_t hop = std::min(c.hop, window);
  for_each_window(file, c.rate, a.channel, window, hop, [&](const SampleRange& r, std::span<const float> s) {
    const std::vector<float> v(s.begin(), s.end());
    ids.push_back(mu_law_window(v, 0, window, c.proto->audio()->level_rms));  // a recording shorter than the window is padded with silence
    ranges.push_back(r);
    progress.add(r.end - r.start);
    if (int64_t(ids.size()) >= a.batch) classify_batch(c, a, file.string(), ids, ranges, rows);
  });
  if (!ids.empty()) classify_batch(c, a, file.string(), ids, ranges, rows);
  return rows;
}

void write_sidecar(const AudioArgs& a, const Classifier& c, const std::vector<fs::path>& files, const std::vector<std::string>& failed) {
  nlohmann::json j = {{"command", command_line()},
                      {"model", fs::absolute(a.model).string()},
                      {"labels", c.proto->labels()},
                      {"sample_rate", c.rate},
                      {"window_s", double(c.window) / c.rate},
                      {"hop_s", double(c.hop) / c.rate},
                      {"min_conf", a.min_conf},
                      {"top_k", a.top_k},
                      {"formats", a.formats},
                      {"files", int64_t(files.size())},
                      {"failed", failed},
                      {"producer", "longseq " LONGSEQ_VERSION}};
  write_text_atomic(fs::path(a.output) / "classify-audio.json", j.dump(2) + "\n");
}

// Every table this run writes, checked before any work: none may replace an input (a recording, a
// model file), and two recordings may not share a per-file table.
void check_outputs(const AudioArgs& a, const std::vector<fs::path>& files) {
  check_output_folder(a.output, ModelDir::files(a.model));
  std::set<std::pair<uint64_t, uint64_t>> inputs;
  for (const auto& p : ModelDir::files(a.model))
    if (const auto id = file_identity(p)) inputs.insert(*id);
  for (const auto& f : files)
    if (const auto id = file_identity(f)) inputs.insert(*id);
  const auto check = [&](const fs::path& out) {
    const auto id = file_identity(out);
    LS_CHECK(!id || !inputs.count(*id), "-o {}: the output {} would replace an input of this run; choose another output folder",
             a.output, out.string());
  };
  check(fs::path(a.output) / "classify-audio.json");
  std::map<fs::path, fs::path> stems;
  for (const auto& f : a.combine ? std::vector<fs::path>{} : files) {
    const auto [it, fresh] = stems.emplace(per_file_stem(a, f), f);
    LS_CHECK(fresh, "{} and {} would both write {}.*; use --combine for one table, or classify the folders separately", it->second.string(),
             f.string(), it->first.string());
  }
  for (const auto& f : a.formats) {
    if (a.combine) check(fs::path(a.output).string() + "/results" + extension_of(f));
    for (const auto& [stem, file] : stems) check(stem.string() + extension_of(f));
  }
}

void run(const AudioArgs& a) {
  if (a.list_inputs) {  // the exact set and order a run would classify: what the cluster workflow shards
    for (const auto& f : expand_inputs(a)) fmt::print("{}\n", f.string());
    return;
  }
  const auto files = expand_inputs(a);
  check_outputs(a, files);
  set_oom_hint("use a smaller --window or --batch, or fewer --threads");
  Classifier c;
  c.proto = train::load_grad_model<float>(a.model);
  LS_CHECK(c.proto->audio() && c.proto->head() == train::Head::Classifier,
           "{} is not a raw-audio classifier (train one with `longseq train --task audio-classify`)", a.model);
  const train::AudioSpec& spec = *c.proto->audio();
  c.rate = int(spec.sample_rate);
  const int64_t stride = spec.stride();
  c.window = a.window > 0 ? std::max<int64_t>(stride, int64_t(std::llround(a.window * c.rate / double(stride))) * stride) : spec.clip_samples;
  c.hop = a.hop > 0 ? std::max<int64_t>(1, int64_t(std::llround(a.hop * c.rate))) : c.window;
  if (a.device == "cuda") c.proto->set_device(make_cuda_ops());  // each worker's clone gets its own device buffers
  for (int i = 0; i < num_threads(); ++i) c.workers.push_back(c.proto->clone());
  fs::create_directories(a.output);
  spdlog::info("classify-audio: {} files, window {:.3f} s, hop {:.3f} s, {} classes", files.size(), double(c.window) / c.rate,
               double(c.hop) / c.rate, c.proto->labels().size());
  Progress progress("classify-audio", 0, "samples");
  std::vector<Row> combined;
  std::vector<std::string> failed;
  int64_t skipped = 0;
  for (const auto& file : files) {
    const fs::path stem = per_file_stem(a, file);
    if (a.skip_existing && !a.combine &&
        std::all_of(a.formats.begin(), a.formats.end(), [&](const std::string& f) { return fs::exists(stem.string() + extension_of(f)); })) {
      ++skipped;
      continue;
    }
    try {
      auto rows = classify_file(c, a, file, progress);
      if (a.combine)
        combined.insert(combined.end(), rows.begin(), rows.end());
      else
        write_tables(rows, stem, a, false);
    } catch (const std::exception& e) {
      spdlog::error("{}", e.what());
      failed.push_back(file.string());
    }
  }
  progress.finish();
  if (a.combine) write_tables(combined, fs::path(a.output) / "results", a, true);
  write_sidecar(a, c, files, failed);
  spdlog::info("classify-audio: {} files classified, {} skipped (--skip-existing), {} failed; tables in {}",
               int64_t(files.size()) - skipped - int64_t(failed.size()), skipped, failed.size(), a.output);
  LS_CHECK(failed.empty(), "{} of {} files could not be classified (listed above and in {}/classify-audio.json); fix or convert them and rerun with --skip-existing",
           failed.size(), files.size(), a.output);
}

}  // namespace

void add_classify_audio(CLI::App& app) {
  auto a = std::make_shared<AudioArgs>();
  auto* cmd = app.add_subcommand("classify-audio", "Label time segments of recordings with a raw-audio classifier");
  cmd->add_option("-m,--model", a->model, "Audio classifier folder (OUT/model of `longseq train --task audio-classify`)")->required();
  cmd->add_option("inputs", a->inputs, "Files, folders, @list.txt or - (paths on stdin)")->required();
  cmd->add_flag("--recursive", a->recursive, "Descend into sub-folders");
  cmd->add_option("--ext", a->extensions, "Extensions taken from folders")->delimiter(',');
  cmd->add_option("--window", a->window,
                  "Window in seconds, up to 86400 (default: the model's clip length; rounded to its pooling stride, and never longer "
                  "than a recording)")
      ->check(finite_range(0.001, 86400.0));
  cmd->add_option("--hop", a->hop, "Hop between windows in seconds, up to 86400 (default: the window)")->check(finite_range(0.001, 86400.0));
  cmd->add_option("--min-conf", a->min_conf, "Leave out labels below this probability")->check(finite_range(0.0, 1.0));
  cmd->add_option("--top-k", a->top_k, "Labels per window")->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  cmd->add_option("--format", a->formats, "csv, json, raven (several allowed)")->delimiter(',')->check(CLI::IsMember({"csv", "json", "raven"}));
  cmd->add_option("-o,--output", a->output, "Output folder (per-file tables, or results.* with --combine)");
  cmd->add_flag("--combine", a->combine, "One table for all files instead of one per file");
  cmd->add_option("--batch", a->batch, "Windows classified together (spread over --threads)")->check(CLI::Range(int64_t(1), int64_t(1) << 16));
  cli::add_device_option(cmd, a->device);
  cmd->add_option("--channel", a->channel, "Use this channel (0-based, 0 to 1023) instead of the mean of all (the default)")
      ->check(CLI::Range(0, 1023));
  cmd->add_flag("--list-inputs", a->list_inputs, "Print the recordings the inputs expand to (in the order classified) and exit");
  cmd->add_flag("--skip-existing", a->skip_existing, "Skip files whose tables already exist (per-file mode)");
  cmd->callback([a] { run(*a); });
}

}  // namespace longseq::cli
