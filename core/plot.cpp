#include "core/plot.h"

#include "core/error.h"
#include "core/fileio.h"

#include <cairo-pdf.h>
#include <cairo-svg.h>
#include <cairo.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

namespace longseq::plot {

namespace {

// Panel layout, in points.
constexpr double kLeft = 62, kRight = 16, kTop = 30, kBottom = 46, kFont = 11;

struct Box {  // the plotting area of a panel
  double x, y, w, h;
};

void set_color(cairo_t* cr, Rgb c, double alpha = 1) { cairo_set_source_rgba(cr, c.r, c.g, c.b, alpha); }

// `s` placed so that (x, y) is at fraction align_x of its width (0 left, 1 right) and align_y of the
// font's height (0 top, 1 bottom), rotated by `angle` radians around that point.
void text(cairo_t* cr, double x, double y, const std::string& s, double align_x, double align_y, double size = kFont,
          bool bold = false, double angle = 0) {
  cairo_save(cr);
  cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, size);
  cairo_text_extents_t e;
  cairo_text_extents(cr, s.c_str(), &e);
  cairo_font_extents_t f;
  cairo_font_extents(cr, &f);
  cairo_translate(cr, x, y);
  cairo_rotate(cr, angle);
  cairo_move_to(cr, -e.x_advance * align_x, f.ascent - align_y * (f.ascent + f.descent));
  cairo_show_text(cr, s.c_str());
  cairo_restore(cr);
}

// Tick values covering [lo, hi] at a step of 1, 2 or 5 times a power of ten, about `target` of them.
std::vector<double> ticks(double lo, double hi, int target = 5) {
  if (!(hi > lo)) return {lo};
  const double raw = (hi - lo) / target, mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  std::vector<double> out;
  for (double v = std::ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push_back(std::abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

std::string tick_label(double v) { return fmt::format("{:.6g}", v); }

Box plot_box(double x0, double y0, double w, double h) { return {x0 + kLeft, y0 + kTop, w - kLeft - kRight, h - kTop - kBottom}; }

// Frame, ticks, labels and title of a panel with data ranges [x_min, x_max] x [y_min, y_max].
void axes(cairo_t* cr, const Box& b, double x_min, double x_max, double y_min, double y_max, const std::string& title,
          const std::string& x_label, const std::string& y_label) {
  cairo_set_line_width(cr, 1);
  set_color(cr, {0, 0, 0});
  cairo_rectangle(cr, b.x, b.y, b.w, b.h);
  cairo_stroke(cr);
  for (double v : ticks(x_min, x_max)) {
    const double x = b.x + (v - x_min) / (x_max - x_min) * b.w;
    cairo_move_to(cr, x, b.y + b.h);
    cairo_line_to(cr, x, b.y + b.h + 4);
    cairo_stroke(cr);
    text(cr, x, b.y + b.h + 7, tick_label(v), 0.5, 0);
  }
  for (double v : ticks(y_min, y_max)) {
    const double y = b.y + b.h - (v - y_min) / (y_max - y_min) * b.h;
    cairo_move_to(cr, b.x - 4, y);
    cairo_line_to(cr, b.x, y);
    cairo_stroke(cr);
    text(cr, b.x - 7, y, tick_label(v), 1, 0.5);
  }
  text(cr, b.x + b.w / 2, b.y + b.h + 26, x_label, 0.5, 0);
  text(cr, b.x - 46, b.y + b.h / 2, y_label, 0.5, 0.5, kFont, false, -M_PI / 2);
  text(cr, b.x + b.w / 2, b.y - 20, title, 0.5, 0, kFont + 1, true);
}

// A legend in the lower-right (ROC) or upper-right corner of the box.
void legend(cairo_t* cr, const Box& b, const std::vector<std::pair<std::string, Rgb>>& entries, bool bottom) {
  const double line = kFont + 4, h = line * double(entries.size());
  double y = bottom ? b.y + b.h - h - 6 : b.y + 8;
  for (const auto& [label, color] : entries) {
    set_color(cr, color);
    cairo_set_line_width(cr, 2.5);
    cairo_move_to(cr, b.x + b.w - 170, y + line / 2);
    cairo_line_to(cr, b.x + b.w - 150, y + line / 2);
    cairo_stroke(cr);
    set_color(cr, {0, 0, 0});
    text(cr, b.x + b.w - 145, y + line / 2, label, 0, 0.5, kFont - 1);
    y += line;
  }
}

// Blue (< 0) through white to red (> 0); t in [-1, 1].
Rgb diverging(double t) {
  t = std::clamp(t, -1.0, 1.0);
  const Rgb blue{0.13, 0.40, 0.67}, red{0.70, 0.09, 0.17};
  const Rgb& end = t < 0 ? blue : red;
  const double a = std::abs(t);
  return {1 + (end.r - 1) * a, 1 + (end.g - 1) * a, 1 + (end.b - 1) * a};
}

cairo_status_t append_to_string(void* closure, const unsigned char* data, unsigned int length) {
  static_cast<std::string*>(closure)->append(reinterpret_cast<const char*>(data), length);
  return CAIRO_STATUS_SUCCESS;
}

}  // namespace

Rgb palette(size_t i) {
  static constexpr std::array<Rgb, 8> kColors{{{0.00, 0.45, 0.70}, {0.90, 0.62, 0.00}, {0.00, 0.62, 0.45}, {0.80, 0.47, 0.65},
                                               {0.34, 0.71, 0.91}, {0.84, 0.37, 0.00}, {0.94, 0.89, 0.26}, {0.0, 0.0, 0.0}}};
  return kColors[i % kColors.size()];
}

Format format_of(const std::filesystem::path& path) {
  const std::string ext = path.extension().string();
  if (ext == ".png") return Format::kPng;
  if (ext == ".svg") return Format::kSvg;
  if (ext == ".pdf") return Format::kPdf;
  fail("{}: the picture's format is chosen by its extension; use .png, .svg or .pdf", path.string());
}

struct Figure::Impl {
  int rows, cols;
  double pw, ph;
  cairo_surface_t* recording = nullptr;
  cairo_t* cr = nullptr;
  double x0(int col) const { return pw * col; }
  double y0(int row) const { return ph * row; }
};

Figure::Figure(int rows, int cols, double panel_w, double panel_h) : impl_(std::make_unique<Impl>()) {
  LS_CHECK(rows >= 1 && cols >= 1 && panel_w > kLeft + kRight + 10 && panel_h > kTop + kBottom + 10, "figure too small");
  impl_->rows = rows;
  impl_->cols = cols;
  impl_->pw = panel_w;
  impl_->ph = panel_h;
  cairo_rectangle_t extents{0, 0, width(), height()};
  impl_->recording = cairo_recording_surface_create(CAIRO_CONTENT_COLOR_ALPHA, &extents);
  impl_->cr = cairo_create(impl_->recording);
  cairo_set_source_rgb(impl_->cr, 1, 1, 1);
  cairo_paint(impl_->cr);
}

Figure::~Figure() {
  cairo_destroy(impl_->cr);
  cairo_surface_destroy(impl_->recording);
}

double Figure::width() const { return impl_->pw * impl_->cols; }
double Figure::height() const { return impl_->ph * impl_->rows; }

void Figure::draw(int row, int col, const LinePanel& p) {
  cairo_t* cr = impl_->cr;
  const Box b = plot_box(impl_->x0(col), impl_->y0(row), impl_->pw, impl_->ph);
  const auto X = [&](double x) { return b.x + (x - p.x_min) / (p.x_max - p.x_min) * b.w; };
  const auto Y = [&](double y) { return b.y + b.h - (y - p.y_min) / (p.y_max - p.y_min) * b.h; };
  cairo_save(cr);
  cairo_rectangle(cr, b.x, b.y, b.w, b.h);
  cairo_clip(cr);
  if (p.diagonal) {
    const double dash = 4;
    cairo_set_dash(cr, &dash, 1, 0);
    set_color(cr, {0.5, 0.5, 0.5});
    cairo_set_line_width(cr, 1);
    cairo_move_to(cr, X(p.x_min), Y(p.y_min));
    cairo_line_to(cr, X(p.x_max), Y(p.y_max));
    cairo_stroke(cr);
    cairo_set_dash(cr, nullptr, 0, 0);
  }
  std::vector<std::pair<std::string, Rgb>> entries;
  for (const Series& s : p.series) {
    if (s.points.empty()) continue;
    set_color(cr, s.color);
    cairo_set_line_width(cr, 2);
    cairo_move_to(cr, X(s.points[0].first), Y(s.points[0].second));
    for (const auto& [x, y] : s.points) cairo_line_to(cr, X(x), Y(y));
    cairo_stroke(cr);
    entries.emplace_back(s.label, s.color);
  }
  cairo_restore(cr);
  axes(cr, b, p.x_min, p.x_max, p.y_min, p.y_max, p.title, p.x_label, p.y_label);
  legend(cr, b, entries, p.diagonal);
}

void Figure::draw(int row, int col, const HistogramPanel& p) {
  cairo_t* cr = impl_->cr;
  const Box b = plot_box(impl_->x0(col), impl_->y0(row), impl_->pw, impl_->ph);
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const auto& [label, values] : p.groups)
    for (double v : values)
      if (std::isfinite(v)) {
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
  if (!std::isfinite(lo)) lo = 0, hi = 1;
  if (hi <= lo) hi = lo + 1;
  const double pad = (hi - lo) * 0.02;
  lo -= pad;
  hi += pad;
  const int bins = std::max(1, p.bins);
  std::vector<std::vector<double>> density;
  double top = 0;
  for (const auto& [label, values] : p.groups) {
    std::vector<double> d(size_t(bins), 0);
    int64_t n = 0;
    for (double v : values)
      if (std::isfinite(v)) {
        d[size_t(std::clamp(int((v - lo) / (hi - lo) * bins), 0, bins - 1))] += 1;
        ++n;
      }
    for (double& x : d) {
      x = n ? x / (double(n) * (hi - lo) / bins) : 0;
      top = std::max(top, x);
    }
    density.push_back(std::move(d));
  }
  if (top <= 0) top = 1;
  top *= 1.1;
  const auto X = [&](double x) { return b.x + (x - lo) / (hi - lo) * b.w; };
  const auto Y = [&](double y) { return b.y + b.h - y / top * b.h; };
  std::vector<std::pair<std::string, Rgb>> entries;
  for (size_t g = 0; g < density.size(); ++g) {
    const Rgb c = palette(g);
    cairo_move_to(cr, X(lo), Y(0));
    for (int i = 0; i < bins; ++i) {
      const double x0 = lo + (hi - lo) * i / bins, x1 = lo + (hi - lo) * (i + 1) / bins;
      cairo_line_to(cr, X(x0), Y(density[g][size_t(i)]));
      cairo_line_to(cr, X(x1), Y(density[g][size_t(i)]));
    }
    cairo_line_to(cr, X(hi), Y(0));
    cairo_close_path(cr);
    set_color(cr, c, 0.18);
    cairo_fill_preserve(cr);
    set_color(cr, c);
    cairo_set_line_width(cr, 1.5);
    cairo_stroke(cr);
    entries.emplace_back(fmt::format("{} (n = {})", p.groups[g].first, p.groups[g].second.size()), c);
  }
  axes(cr, b, lo, hi, 0, top, p.title, p.x_label, "density");
  legend(cr, b, entries, false);
}

void Figure::draw(int row, int col, const HeatmapPanel& p) {
  cairo_t* cr = impl_->cr;
  const double x0 = impl_->x0(col), y0 = impl_->y0(row);
  const int64_t n = int64_t(p.values.size());
  LS_CHECK(n > 0 && int64_t(p.reference.size()) == n, "heatmap: {} columns of values and {} reference bases", n, p.reference.size());
  double limit = p.limit;
  if (limit <= 0)
    for (const auto& col_values : p.values)
      for (double v : col_values)
        if (std::isfinite(v)) limit = std::max(limit, std::abs(v));
  if (limit <= 0) limit = 1;
  // Rows: title, 4 heat rows, reference letters, gene arrows, position axis; a colour bar on the right.
  const double bar_w = 70, left = x0 + 28, w = impl_->pw - 28 - bar_w - 16;
  const double top = y0 + kTop, cell_w = w / double(n), gene_h = p.genes.empty() ? 0 : 26;
  const double heat_h = impl_->ph - kTop - 60 - gene_h, cell_h = heat_h / 4;
  text(cr, x0 + impl_->pw / 2, y0 + 10, p.title, 0.5, 0, kFont + 1, true);
  static constexpr char kBases[] = {'A', 'C', 'G', 'T'};
  for (int r = 0; r < 4; ++r) {
    set_color(cr, {0, 0, 0});
    text(cr, left - 8, top + cell_h * (r + 0.5), std::string(1, kBases[r]), 1, 0.5, kFont, true);
    for (int64_t i = 0; i < n; ++i) {
      const double v = p.values[size_t(i)][size_t(r)];
      const Rgb c = std::isfinite(v) ? diverging(v / limit) : Rgb{0.85, 0.85, 0.85};
      set_color(cr, c);
      // Cells overlap by a hair so antialiasing leaves no seams between them.
      cairo_rectangle(cr, left + cell_w * double(i), top + cell_h * r, cell_w + 0.3, cell_h + 0.3);
      cairo_fill(cr);
    }
  }
  set_color(cr, {0, 0, 0});
  cairo_set_line_width(cr, 0.8);
  cairo_rectangle(cr, left, top, w, heat_h);
  cairo_stroke(cr);
  // The reference sequence: letters when a column is wide enough to read them, else coloured ticks.
  const double seq_y = top + heat_h + 4;
  for (int64_t i = 0; i < n; ++i) {
    const char base = p.reference[size_t(i)];
    const int bi = base == 'A' ? 0 : base == 'C' ? 1 : base == 'G' ? 2 : base == 'T' ? 3 : -1;
    const Rgb c = bi < 0 ? Rgb{0.5, 0.5, 0.5} : palette(size_t(bi == 3 ? 5 : bi));
    set_color(cr, c);
    if (cell_w >= 7) {
      text(cr, left + cell_w * (double(i) + 0.5), seq_y, std::string(1, base), 0.5, 0, std::min(kFont, cell_w * 1.2), true);
    } else {
      cairo_rectangle(cr, left + cell_w * double(i), seq_y, cell_w + 0.3, 8);
      cairo_fill(cr);
    }
  }
  // Genes: an arrow per gene along its extent, pointing in its reading direction.
  const double gy = seq_y + 18 + gene_h / 2;
  for (size_t g = 0; g < p.genes.size(); ++g) {
    const Gene& gene = p.genes[g];
    const double a = left + cell_w * double(std::max<int64_t>(gene.start, 0));
    const double e = left + cell_w * double(std::min<int64_t>(gene.end, n));
    if (e <= a) continue;
    const double head = std::min(10.0, e - a);
    set_color(cr, {0.35, 0.35, 0.35});
    if (gene.strand == '+') {
      cairo_rectangle(cr, a, gy - 4, e - a - head, 8);
      cairo_move_to(cr, e - head, gy - 8);
      cairo_line_to(cr, e, gy);
      cairo_line_to(cr, e - head, gy + 8);
    } else {
      cairo_rectangle(cr, a + head, gy - 4, e - a - head, 8);
      cairo_move_to(cr, a + head, gy - 8);
      cairo_line_to(cr, a, gy);
      cairo_line_to(cr, a + head, gy + 8);
    }
    cairo_fill(cr);
    set_color(cr, {0, 0, 0});
    text(cr, (a + e) / 2, gy + 6, gene.label, 0.5, 0, kFont - 2);
  }
  // Position axis: genome coordinates (1-based).
  const double axis_y = seq_y + 18 + gene_h + (p.genes.empty() ? 0 : 12);
  set_color(cr, {0, 0, 0});
  for (double v : ticks(double(p.first_position), double(p.first_position + n - 1), 6)) {
    const double x = left + cell_w * (v - double(p.first_position) + 0.5);
    cairo_move_to(cr, x, axis_y - 4);
    cairo_line_to(cr, x, axis_y);
    cairo_stroke(cr);
    text(cr, x, axis_y + 3, fmt::format("{:.0f}", v), 0.5, 0, kFont - 1);
  }
  // Colour bar.
  const double bx = left + w + 14, bh = heat_h;
  for (int i = 0; i < 100; ++i) {
    set_color(cr, diverging(1 - 2 * (i + 0.5) / 100));
    cairo_rectangle(cr, bx, top + bh * i / 100, 12, bh / 100 + 0.3);
    cairo_fill(cr);
  }
  set_color(cr, {0, 0, 0});
  text(cr, bx + 16, top, fmt::format("{:+.3g}", limit), 0, 1, kFont - 1);
  text(cr, bx + 16, top + bh / 2, "0", 0, 0.5, kFont - 1);
  text(cr, bx + 16, top + bh, fmt::format("{:+.3g}", -limit), 0, 0, kFont - 1);
  text(cr, bx + 60, top + bh / 2, p.value_label, 0.5, 0.5, kFont - 1, false, -M_PI / 2);
}

void Figure::save(const std::filesystem::path& path) const {
  const Format f = format_of(path);
  AtomicFile file(path);
  const std::string tmp = file.temp_path().string();
  cairo_surface_t* target = nullptr;
  if (f == Format::kPng)
    target = cairo_image_surface_create(CAIRO_FORMAT_RGB24, int(std::ceil(width())), int(std::ceil(height())));
  else if (f == Format::kSvg)
    target = cairo_svg_surface_create(tmp.c_str(), width(), height());
  else
    target = cairo_pdf_surface_create(tmp.c_str(), width(), height());
  cairo_t* cr = cairo_create(target);
  cairo_set_source_surface(cr, impl_->recording, 0, 0);
  cairo_paint(cr);
  cairo_destroy(cr);
  cairo_surface_flush(target);
  cairo_status_t status = cairo_surface_status(target);
  if (f == Format::kPng && status == CAIRO_STATUS_SUCCESS) status = cairo_surface_write_to_png(target, tmp.c_str());
  cairo_surface_finish(target);
  if (status == CAIRO_STATUS_SUCCESS) status = cairo_surface_status(target);
  cairo_surface_destroy(target);
  LS_CHECK(status == CAIRO_STATUS_SUCCESS, "{}: cannot write the picture ({}); check the folder is writable and has space", path.string(),
           cairo_status_to_string(status));
  file.commit();
}

std::string Figure::svg() const {
  std::string out;
  cairo_surface_t* target = cairo_svg_surface_create_for_stream(append_to_string, &out, width(), height());
  cairo_t* cr = cairo_create(target);
  cairo_set_source_surface(cr, impl_->recording, 0, 0);
  cairo_paint(cr);
  cairo_destroy(cr);
  cairo_surface_finish(target);
  const cairo_status_t status = cairo_surface_status(target);
  cairo_surface_destroy(target);
  LS_CHECK(status == CAIRO_STATUS_SUCCESS, "cannot render the SVG ({})", cairo_status_to_string(status));
  return out;
}

}  // namespace longseq::plot
