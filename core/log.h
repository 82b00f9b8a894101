// Logging goes to stderr through spdlog so stdout stays clean for data (TSV, VCF on "-").
#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace longseq {

// level: trace, debug, info, warn, error, off. Throws longseq::Error for other names.
void init_logging(const std::string& level);

}  // namespace longseq
