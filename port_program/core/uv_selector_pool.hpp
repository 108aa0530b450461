// Idle UvSelectors kept for reuse (uv_selector_pool.cpp).
#pragma once

#include <memory>

#include "core/uv_selector.hpp"

namespace ep {

// A ready selector, pooled or new: 0, or a libuv error.
int take_selector(std::unique_ptr<UvSelector>& out);
// A selector no one uses any more: pooled when it can be reset, else destroyed.
void give_back_selector(std::unique_ptr<UvSelector> sel);

}  // namespace ep
