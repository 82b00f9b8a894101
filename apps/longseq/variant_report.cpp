#include "apps/longseq/variant_report.h"

#include "apps/longseq/commands.h"
#include "core/fileio.h"
#include "core/plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace longseq::cli {

namespace {

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

bool heap_order(const auto& a, const auto& b) { return a.damage > b.damage; }  // min-heap on damage

}  // namespace

VariantReport::VariantReport(std::vector<std::string> features, size_t top)
    : features_(std::move(features)), top_(top), values_(features_.size()), hits_(features_.size()) {}

void VariantReport::add(const std::string& contig, int64_t pos, const std::string& ref, const std::string& alt, const AlleleScore& score) {
  ++reasons_[size_t(score.reason)];
  if (score.reason != SkipReason::kNone) return;
  for (size_t f = 0; f < features_.size(); ++f) {
    values_[f].push_back(float(score.score[f]));
    offer(f, {damage_sign(features_[f]) * score.score[f], score.score[f], fmt::format("{}:{} {}&gt;{}", escape(contig), pos, escape(ref), escape(alt))});
  }
}

void VariantReport::offer(size_t f, Hit hit) {
  auto& heap = hits_[f];
  if (heap.size() < top_) {
    heap.push_back(std::move(hit));
    std::push_heap(heap.begin(), heap.end(), heap_order<Hit, Hit>);
  } else if (hit.damage > heap.front().damage) {
    std::pop_heap(heap.begin(), heap.end(), heap_order<Hit, Hit>);
    heap.back() = std::move(hit);
    std::push_heap(heap.begin(), heap.end(), heap_order<Hit, Hit>);
  }
}

void VariantReport::write(const std::filesystem::path& path, const std::string& title,
                          const std::vector<std::pair<std::string, std::string>>& facts) const {
  std::string html = fmt::format(
      "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{0}</title>\n<style>body{{font-family:sans-serif;margin:2em;"
      "max-width:1000px}}table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}"
      "th{{background:#eee}}td.n{{text-align:right;font-family:monospace}}</style></head><body>\n<h1>{0}</h1>\n<table>\n",
      escape(title));
  for (const auto& [k, v] : facts) html += fmt::format("<tr><th>{}</th><td>{}</td></tr>\n", escape(k), escape(v));
  html += "</table>\n<h2>Alleles by outcome</h2>\n<table><tr><th>outcome</th><th>alleles</th></tr>\n";
  for (size_t r = 0; r < reasons_.size(); ++r)
    if (reasons_[r] || r == 0)
      html += fmt::format("<tr><td>{}</td><td class=\"n\">{}</td></tr>\n", skip_reason_name(SkipReason(r)), reasons_[r]);
  html += "</table>\n";
  for (size_t f = 0; f < features_.size(); ++f) {
    html += fmt::format("<h2>{}</h2>\n", escape(features_[f]));
    if (values_[f].empty()) {
      html += "<p>No allele was scored.</p>\n";
      continue;
    }
    std::vector<double> v(values_[f].begin(), values_[f].end());
    std::vector<double> sorted = v;
    std::sort(sorted.begin(), sorted.end());
    const auto q = [&](double p) { return sorted[size_t(std::clamp(p * double(sorted.size() - 1), 0.0, double(sorted.size() - 1)))]; };
    html += fmt::format("<p>{} scored alleles; min {:.4g}, 5% {:.4g}, median {:.4g}, 95% {:.4g}, max {:.4g}.</p>\n", v.size(), sorted.front(),
                        q(0.05), q(0.5), q(0.95), sorted.back());
    plot::Figure fig(1, 1, 640, 300);
    plot::HistogramPanel panel;
    panel.title = "distribution of " + features_[f];
    panel.x_label = features_[f];
    panel.bins = 60;
    panel.groups.emplace_back("scored alleles", std::move(v));
    fig.draw(0, 0, panel);
    const std::string svg = fig.svg();
    html += svg.substr(std::min(svg.find("<svg"), svg.size())) + "\n";  // inline: drop the XML declaration
    std::vector<Hit> top = hits_[f];
    std::sort(top.begin(), top.end(), heap_order<Hit, Hit>);
    html += fmt::format("<h3>Top {} by {} ({} first)</h3>\n<table><tr><th>#</th><th>variant</th><th>{}</th></tr>\n", top.size(),
                        escape(features_[f]), damage_sign(features_[f]) < 0 ? "lowest" : "highest", escape(features_[f]));
    for (size_t i = 0; i < top.size(); ++i)
      html += fmt::format("<tr><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{:.6g}</td></tr>\n", i + 1, top[i].variant, top[i].value);
    html += "</table>\n";
  }
  html += "</body></html>\n";
  AtomicFile file(path);
  file.write(html);
  file.commit();
}

}  // namespace longseq::cli
