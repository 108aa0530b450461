// Room left on the calling thread's stack, for the recursive term conversion.
//
// Executors run on large stacks (native_thread.hpp), but the conversion also
// runs on Python's own threads (erlang.call, channel receives), which may have
// been started with a small stack (threading.stack_size): a term nested a few
// thousand levels deep would overflow it and kill the port program. The
// conversion checks this at every container and fails with RecursionError
// once less than a reserve is left.
#pragma once

namespace ep {

bool stack_nearly_full();

}  // namespace ep
