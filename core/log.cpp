#include "core/log.h"

#include "core/error.h"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace longseq {

void init_logging(const std::string& level) {
  const auto lvl = spdlog::level::from_str(level);
  LS_CHECK(lvl != spdlog::level::off || level == "off",
           "unknown log level '{}' (use trace, debug, info, warn, error or off)", level);
  auto logger = spdlog::stderr_color_mt("longseq");
  logger->set_pattern("[%^%l%$] %v");
  logger->set_level(lvl);
  spdlog::set_default_logger(logger);
}

}  // namespace longseq
