// One exception type for everything a user can get wrong; the CLI turns it into a one-line message and exit code.
#pragma once
#include <stdexcept>
#include <string>

namespace rectifier {

enum ExitCode : int { kExitOk = 0, kExitBadInput = 2, kExitNonFinite = 3 };

struct Error : std::runtime_error {
  int exit_code;
  explicit Error(const std::string& message, int code = kExitBadInput) : std::runtime_error(message), exit_code(code) {}
};

}  // namespace rectifier
