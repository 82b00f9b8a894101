// Pictures the commands draw (ROC curves, score histograms, ISM heatmaps), rendered by cairo to PNG,
// SVG or PDF (chosen by the file name) or to an SVG string for a self-contained HTML report. A figure
// is a grid of panels; each plot kind is one function that fills a panel, so the commands describe
// what to show and the drawing (axes, ticks, legends, colour scales) is written once here.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace longseq::plot {

struct Rgb {
  double r = 0, g = 0, b = 0;
};
// A qualitative palette (Okabe-Ito, readable with colour blindness): colour i of it, cycling.
Rgb palette(size_t i);

struct Series {
  std::string label;
  std::vector<std::pair<double, double>> points;  // (x, y), drawn joined in order
  Rgb color;
};

struct LinePanel {
  std::string title, x_label, y_label;
  double x_min = 0, x_max = 1, y_min = 0, y_max = 1;
  std::vector<Series> series;
  bool diagonal = false;  // the y = x chance line of an ROC plot
};

struct HistogramPanel {
  std::string title, x_label;
  std::vector<std::pair<std::string, std::vector<double>>> groups;  // (label, values): one outline each, density-normalised
  int bins = 40;
};

// A 4 x positions heatmap of per-base effects (ISM): rows A, C, G, T, one column per position; the
// reference base's cell is blank. Values are coloured on a scale symmetric around 0 (blue below,
// red above), clipped at `limit` (0: the largest |value|).
struct Gene {
  int64_t start = 0, end = 0;  // columns [start, end) relative to the first position, may lie outside
  char strand = '+';
  std::string label;
};
struct HeatmapPanel {
  std::string title, value_label;
  int64_t first_position = 1;          // 1-based genome position of column 0 (axis labels)
  std::string reference;               // one base per column
  std::vector<std::array<double, 4>> values;  // [column][A, C, G, T]; NaN: no value (the reference base)
  double limit = 0;
  std::vector<Gene> genes;             // arrows under the heatmap
};

enum class Format { kPng, kSvg, kPdf };
// From the extension (.png, .svg, .pdf); throws naming the path otherwise.
Format format_of(const std::filesystem::path& path);

// A figure of rows x cols panels, each panel_w x panel_h points (PNG: pixels at 1x).
class Figure {
 public:
  Figure(int rows, int cols, double panel_w, double panel_h);
  ~Figure();
  Figure(const Figure&) = delete;
  Figure& operator=(const Figure&) = delete;

  void draw(int row, int col, const LinePanel& p);
  void draw(int row, int col, const HistogramPanel& p);
  void draw(int row, int col, const HeatmapPanel& p);
  // Renders to `path` (format from its name), written to a temp file and renamed when complete.
  // Throws naming the path when it cannot be written.
  void save(const std::filesystem::path& path) const;
  // Renders to an SVG document (for embedding in HTML).
  std::string svg() const;

  double width() const;
  double height() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace longseq::plot
