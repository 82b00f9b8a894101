#include "core/train/trainer.h"

#include "core/error.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/memory.h"
#include "core/progress.h"
#include "core/safetensors.h"
#include "core/temp_paths.h"
#include "core/threads.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <omp.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <numbers>
#include <sstream>

namespace longseq::train {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// One model copy per thread; examples run in parallel, one per thread at a time, each into its own
// gradient buffer, and are summed in example order afterwards.
class Workers {
 public:
  explicit Workers(const GradModel<float>& model) {
    for (int i = 0; i < num_threads(); ++i) copies_.push_back(model.clone());
  }
  void sync(const GradModel<float>& model) {
    for (auto& c : copies_) c->weights() = model.weights();
  }
  // losses[i] for examples[i]; grads (when non-null) gets scale * sum of their gradients.
  std::vector<double> run(const std::vector<const Example*>& examples, bool classification, double scale, std::vector<float>* grad,
                          std::vector<std::vector<double>>* logits) {
    const int64_t n = int64_t(examples.size());
    std::vector<double> losses(size_t(n), 0.0);
    if (grad) buffers_.resize(size_t(n));
    if (logits) logits->assign(size_t(n), {});
    std::string error;
#pragma omp parallel for schedule(dynamic, 1) if (n > 1)
    for (int64_t i = 0; i < n; ++i) {
      GradModel<float>& m = *copies_[size_t(omp_get_thread_num())];
      const Example& ex = *examples[size_t(i)];
      float* g = nullptr;
      if (grad) {
        buffers_[size_t(i)].assign(size_t(m.params().size()), 0.0f);
        g = buffers_[size_t(i)].data();
      }
      try {
        losses[size_t(i)] = classification ? m.class_loss(ex.ids, ex.label, scale, g, logits ? &(*logits)[size_t(i)] : nullptr)
                                           : m.lm_loss(ex.ids, ex.targets, scale, g);
      } catch (const std::exception& e) {
#pragma omp critical
        if (error.empty()) error = e.what();
      }
    }
    if (!error.empty()) throw Error(error);
    if (grad)
      for (int64_t i = 0; i < n; ++i) {
        const std::vector<float>& b = buffers_[size_t(i)];
        for (size_t k = 0; k < b.size(); ++k) (*grad)[k] += b[k];
      }
    return losses;
  }

 private:
  std::vector<std::unique_ptr<GradModel<float>>> copies_;
  std::vector<std::vector<float>> buffers_;
};

int64_t counted_targets(const Example& e) {
  int64_t n = 0;
  for (int64_t t : e.targets) n += t >= 0;
  return n;
}

// Per-class precision and recall and the confusion matrix ([truth][predicted]) of a validation.
void add_per_class(nlohmann::json& row, const std::vector<std::vector<int64_t>>& c) {
  std::vector<double> precision, recall;
  for (size_t k = 0; k < c.size(); ++k) {
    int64_t predicted = 0, truth = 0;
    for (size_t j = 0; j < c.size(); ++j) {
      predicted += c[j][k];
      truth += c[k][j];
    }
    precision.push_back(predicted ? double(c[k][k]) / double(predicted) : 0.0);
    recall.push_back(truth ? double(c[k][k]) / double(truth) : 0.0);
  }
  row["val_precision"] = precision;
  row["val_recall"] = recall;
  row["val_confusion"] = c;
}

double mcc(const std::vector<std::vector<int64_t>>& c) {
  const size_t K = c.size();
  double s = 0, correct = 0, pt = 0, pp = 0, tt = 0;
  std::vector<double> t(K, 0.0), p(K, 0.0);
  for (size_t i = 0; i < K; ++i)
    for (size_t j = 0; j < K; ++j) {
      t[i] += double(c[i][j]);
      p[j] += double(c[i][j]);
      s += double(c[i][j]);
      if (i == j) correct += double(c[i][j]);
    }
  for (size_t k = 0; k < K; ++k) {
    pt += p[k] * t[k];
    pp += p[k] * p[k];
    tt += t[k] * t[k];
  }
  const double den = std::sqrt((s * s - pp) * (s * s - tt));
  return den > 0 ? (correct * s - pt) / den : 0.0;
}

EvalResult evaluate_with(Workers& workers, const std::vector<Example>& examples, bool classification, int64_t classes) {
  EvalResult r;
  if (examples.empty()) return r;
  std::vector<const Example*> ptrs;
  for (const auto& e : examples) ptrs.push_back(&e);
  std::vector<std::vector<double>> logits;
  const std::vector<double> losses = workers.run(ptrs, classification, 1.0, nullptr, classification ? &logits : nullptr);
  double sum = 0;
  for (double l : losses) sum += l;
  if (classification) {
    r.count = int64_t(examples.size());
    r.confusion.assign(size_t(classes), std::vector<int64_t>(size_t(classes), 0));
    int64_t right = 0;
    for (size_t i = 0; i < examples.size(); ++i) {
      const auto& lg = logits[i];
      const int64_t pred = int64_t(std::max_element(lg.begin(), lg.end()) - lg.begin());
      ++r.confusion[size_t(examples[i].label)][size_t(pred)];
      right += pred == examples[i].label;
    }
    r.accuracy = double(right) / double(r.count);
    r.mcc = mcc(r.confusion);
  } else {
    for (const auto& e : examples) r.count += counted_targets(e);
  }
  r.loss = sum / double(std::max<int64_t>(r.count, 1));
  r.bits = r.loss / std::numbers::ln2;
  return r;
}

// ---- checkpoints ----------------------------------------------------------------------------

std::string checkpoint_name(int64_t step) { return fmt::format("checkpoint-{:07d}", step); }

void save_checkpoint(const GradModel<float>& model, const AdamW& adam, const TrainOptions& o, int64_t step, const nlohmann::json& last) {
  const fs::path final_dir = o.out_dir / checkpoint_name(step), tmp = o.out_dir / ("." + checkpoint_name(step) + ".tmp");
  fs::remove_all(tmp);
  TempPathGuard guard(tmp, [&] { fs::create_directories(tmp); });  // a signal while it is written removes it
  model.save(tmp);
  adam.save(tmp / "optimizer.safetensors");
  nlohmann::json state = {{"step", step}, {"seed", o.seed}, {"batch", o.batch}, {"accumulate", o.accumulate},
                          {"lr", o.adam.lr}, {"warmup", o.warmup}, {"steps", o.steps}, {"last_metrics", last}};
  for (const auto& [k, v] : o.run_info) state["run"][k] = v;
  write_text_atomic(tmp / "trainer_state.json", state.dump(2) + "\n");
  fs::remove_all(final_dir);
  guard.finish([&] { fs::rename(tmp, final_dir); });  // the folder appears complete or not at all
  write_text_atomic(o.out_dir / "latest", checkpoint_name(step) + "\n");
  std::vector<fs::path> all;
  for (const auto& e : fs::directory_iterator(o.out_dir))
    if (e.is_directory() && e.path().filename().string().starts_with("checkpoint-")) all.push_back(e.path());
  std::sort(all.begin(), all.end());
  for (size_t i = 0; o.keep_checkpoints > 0 && i + size_t(o.keep_checkpoints) < all.size(); ++i) fs::remove_all(all[i]);
}

void save_final_model(const GradModel<float>& model, const fs::path& out_dir) {
  const fs::path dir = out_dir / "model", tmp = out_dir / ".model.tmp";
  fs::remove_all(tmp);
  TempPathGuard guard(tmp, [&] { fs::create_directories(tmp); });
  model.save(tmp);
  fs::remove_all(dir);
  guard.finish([&] { fs::rename(tmp, dir); });
}

void load_weights(GradModel<float>& model, const fs::path& file) {
  const auto f = SafetensorsFile::open(file);
  for (const auto& p : model.params().list()) {
    LS_CHECK(f.contains(p.name), "{}: no tensor '{}' (the checkpoint belongs to another model)", file.string(), p.name);
    LS_CHECK(f.info(p.name).shape == p.shape, "{}: '{}' has shape {}, the model needs {}", file.string(), p.name,
             shape_str(f.info(p.name).shape), shape_str(p.shape));
    const auto v = model.from_file_layout(p.name, f.load_f32(p.name)).to_vector();
    std::copy(v.begin(), v.end(), model.weights().begin() + p.offset);
  }
}

// ---- metrics --------------------------------------------------------------------------------

class Metrics {
 public:
  Metrics(fs::path path, bool resume, int64_t keep_upto) : path_(std::move(path)), csv_(path_.extension() == ".csv") {
    if (resume && fs::exists(path_)) truncate_after(keep_upto);
    else fs::remove(path_);
  }
  void write(const nlohmann::json& row) {
    std::ofstream out(path_, std::ios::app);
    LS_CHECK(out.good(), "cannot write metrics to {} (check the folder's permissions)", path_.string());
    if (!csv_) {
      out << row.dump() << "\n";
      return;
    }
    if (fs::file_size(path_) == 0) out << join(columns(), ",") << "\n";
    std::vector<std::string> cells;
    for (const auto& c : columns()) cells.push_back(row.contains(c) ? row[c].dump() : "");
    out << join(cells, ",") << "\n";
  }

 private:
  static const std::vector<std::string>& columns() {
    static const std::vector<std::string> c = {"step", "loss", "bits", "lr", "grad_norm", "tokens_per_s", "elapsed_s",
                                               "val_loss", "val_bits", "val_accuracy", "val_mcc"};
    return c;
  }
  static std::string join(const std::vector<std::string>& v, const char* sep) {
    std::string s;
    for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + v[i];
    return s;
  }
  // A resumed run rewrites the rows after the checkpoint, so the file holds one curve.
  void truncate_after(int64_t step) {
    std::ifstream in(path_);
    std::string line, kept;
    bool header = csv_;
    while (std::getline(in, line)) {
      if (header) {
        kept += line + "\n";
        header = false;
        continue;
      }
      int64_t s = -1;
      try {
        s = csv_ ? std::stoll(line) : nlohmann::json::parse(line).at("step").get<int64_t>();
      } catch (const std::exception&) {
        continue;  // a half-written last line of an interrupted run
      }
      if (s <= step) kept += line + "\n";
    }
    write_text_atomic(path_, kept);
  }
  fs::path path_;
  bool csv_;
};

}  // namespace

fs::path latest_checkpoint(const fs::path& out_dir) {
  std::ifstream in(out_dir / "latest");
  std::string name;
  if (!(in >> name)) return {};
  const fs::path p = out_dir / name;
  return fs::exists(p / "trainer_state.json") ? p : fs::path{};
}

EvalResult evaluate(GradModel<float>& model, const std::vector<Example>& examples, bool classification, int64_t classes) {
  Workers w(model);
  return evaluate_with(w, examples, classification, classes);
}

TrainSummary train_model(GradModel<float>& model, const TrainTask& task, const TrainOptions& o) {
  LS_CHECK(o.steps >= 1 && o.batch >= 1 && o.accumulate >= 1 && o.batch % o.accumulate == 0,
           "--steps and --batch must be >= 1 and --batch a multiple of --accumulate (got batch {}, accumulate {})", o.batch,
           o.accumulate);
  LS_CHECK(!o.out_dir.empty(), "an output folder is needed (-o DIR)");
  fs::create_directories(o.out_dir);
  const bool cls = task.classification();
  AdamW adam(model.params(), o.adam);
  int64_t start = 0;
  if (o.resume) {
    const fs::path ck = latest_checkpoint(o.out_dir);
    LS_CHECK(!ck.empty(), "--resume: no complete checkpoint in {} (start without --resume)", o.out_dir.string());
    const auto state = nlohmann::json::parse(read_text_file(ck / "trainer_state.json"));
    for (const auto& [key, value] : std::vector<std::pair<const char*, int64_t>>{
             {"seed", int64_t(o.seed)}, {"batch", o.batch}, {"accumulate", o.accumulate}})
      LS_CHECK(state.at(key).get<int64_t>() == value,
               "--resume: {} has {} {} but this run asks for {} (resume with the original options)", ck.string(), key,
               state.at(key).get<int64_t>(), value);
    load_weights(model, ck / "model.safetensors");
    adam.load(ck / "optimizer.safetensors");
    start = state.at("step").get<int64_t>();
    spdlog::info("resuming from {} (step {})", ck.string(), start);
  }
  Metrics metrics(o.metrics.empty() ? o.out_dir / "metrics.jsonl" : o.metrics, o.resume, start);
  Workers workers(model);
  TrainSummary summary;
  std::vector<float> grad(size_t(model.params().size()));
  const int64_t micro = o.batch / o.accumulate;
  const auto t0 = Clock::now();
  auto last_log = t0;
  int64_t tokens_since_log = 0, tokens_total = 0;
  nlohmann::json last_row;
  Progress progress("train", o.steps - start, "steps");
  int64_t step = start;
  for (; step < o.steps; ++step) {
    const double lr = scheduled_lr(o.adam.lr, step, o.warmup, o.steps, o.min_lr_ratio);
    std::fill(grad.begin(), grad.end(), 0.0f);
    std::vector<Example> batch;
    for (int64_t i = 0; i < o.batch; ++i) batch.push_back(task.sample(o.seed, step, i));
    int64_t count = 0;
    for (const auto& e : batch) count += cls ? 1 : counted_targets(e);
    const double scale = 1.0 / double(std::max<int64_t>(count, 1));
    double loss = 0;
    workers.sync(model);
    for (int64_t a = 0; a < o.accumulate; ++a) {
      std::vector<const Example*> part;
      for (int64_t i = a * micro; i < (a + 1) * micro; ++i) part.push_back(&batch[size_t(i)]);
      for (double l : workers.run(part, cls, scale, &grad, nullptr)) loss += l;
      for (const auto* e : part) tokens_since_log += int64_t(e->ids.size());
    }
    loss *= scale;
    const double norm = clip_grad_norm(grad, o.clip);
    // A NaN or infinite loss or gradient would spread into every weight at this step: stop before it
    // does, keeping the checkpoints already written.
    LS_CHECK(std::isfinite(loss) && std::isfinite(norm),
             "training diverged at step {}: loss {}, gradient norm {}; the weights were not updated. Lower --lr, raise --warmup or "
             "set --clip, and start again (or --resume from the last checkpoint in {})",
             step + 1, loss, norm, o.out_dir.string());
    adam.step(model.weights(), grad, lr);
    progress.add(1);
    const bool last = step + 1 == o.steps;
    const double minutes = std::chrono::duration<double>(Clock::now() - t0).count() / 60;
    const bool out_of_time = o.max_minutes > 0 && minutes >= o.max_minutes;
    nlohmann::json row = {{"step", step + 1}, {"loss", loss}, {"bits", loss / std::numbers::ln2}, {"lr", lr}, {"grad_norm", norm}};
    const bool log_now = (step + 1) % o.log_every == 0 || last || out_of_time;
    if (log_now) {
      const auto now = Clock::now();
      const double dt = std::chrono::duration<double>(now - last_log).count();
      row["tokens_per_s"] = dt > 0 ? double(tokens_since_log) / dt : 0.0;
      row["elapsed_s"] = std::chrono::duration<double>(now - t0).count();
      tokens_total += tokens_since_log;
      tokens_since_log = 0;
      last_log = now;
    }
    // Not on a --max-minutes stop: the curve of an interrupted + resumed run stays that of one run.
    if ((o.eval_every > 0 && (step + 1) % o.eval_every == 0) || last) {
      workers.sync(model);
      const EvalResult ev = evaluate_with(workers, task.validation(), cls, model.classes());
      if (ev.count > 0) {
        row["val_loss"] = ev.loss;
        if (cls) {
          row["val_accuracy"] = ev.accuracy;
          row["val_mcc"] = ev.mcc;
          add_per_class(row, ev.confusion);  // JSONL only: the CSV keeps its fixed columns
        } else {
          row["val_bits"] = ev.bits;
        }
      }
      summary.final_eval = ev;
    }
    if (log_now || row.contains("val_loss")) {
      metrics.write(row);
      // A classifier's loss is per example, not per token: no bits/token for it.
      std::string line = cls ? fmt::format("step {:>6}/{}  loss {:.4f}  lr {:.2e}  grad_norm {:.3f}", step + 1, o.steps, loss, lr, norm)
                             : fmt::format("step {:>6}/{}  loss {:.4f} ({:.4f} bits/{})  lr {:.2e}  grad_norm {:.3f}", step + 1, o.steps,
                                           loss, loss / std::numbers::ln2, task.target_unit(), lr, norm);
      if (row.contains("tokens_per_s")) line += fmt::format("  {:.0f} {}s/s", row["tokens_per_s"].get<double>(), task.token_unit());
      if (row.contains("val_bits")) line += fmt::format("  val {:.4f} bits/{}", row["val_bits"].get<double>(), task.target_unit());
      if (row.contains("val_accuracy"))
        line += fmt::format("  val acc {:.3f} mcc {:.3f}", row["val_accuracy"].get<double>(), row["val_mcc"].get<double>());
      fmt::print("{}\n", line);
      std::fflush(stdout);
    }
    last_row = row;
    summary.last_loss = loss;
    if ((o.save_every > 0 && (step + 1) % o.save_every == 0) || last || out_of_time) save_checkpoint(model, adam, o, step + 1, last_row);
    if (out_of_time) {
      spdlog::warn("--max-minutes {} reached at step {}: checkpoint saved (continue with --resume)", o.max_minutes, step + 1);
      ++step;
      break;
    }
  }
  progress.finish();
  summary.steps_done = step;
  summary.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  summary.tokens_per_second = summary.seconds > 0 ? double(tokens_total + tokens_since_log) / summary.seconds : 0;
  save_final_model(model, o.out_dir);
  summary.model_dir = o.out_dir / "model";
  return summary;
}

}  // namespace longseq::train
