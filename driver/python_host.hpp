// The one CPython of the VM, started by the first port that needs it.
#pragma once

#include <string>
#include <vector>

namespace ep::drv {

// Starts CPython (once per VM) on the calling thread, a thread of the driver's
// own, with `python_path` first on sys.path; later calls add the entries of
// their `python_path` that sys.path lacks. False (with the reason in `error`)
// if CPython or the `erlang` package could not start: it cannot be tried
// again in this VM.
bool ensure_python(const std::vector<std::string>& python_path, std::string& error);

}  // namespace ep::drv
