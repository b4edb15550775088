/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "chunkpool.h"

#include <atomic>

namespace costream {

std::shared_ptr<void> ChunkPool::take(size_t bytes, uint8_t **data) {
  /* Slots come back in about the order they were handed out (a queue is read in order): look
   * from where the last one was taken. */
  const size_t n = slots_.size();
  for (size_t k = 0; k < n; k++) {
    auto &slot = slots_[(next_ + k) % n];
    if (slot.use_count() != 1)
      continue;
    /* Only the pool holds it: nobody else can get it back. Whatever the last holder did with
     * the samples happened before its release, which this fence orders before our writes. */
    std::atomic_thread_fence(std::memory_order_acquire);
    if (slot->size() < bytes)
      slot->resize(bytes);
    next_ = (next_ + k + 1) % n;
    *data = slot->data();
    return slot;
  }
  slots_.push_back(std::make_shared<std::vector<uint8_t>>(bytes));
  next_ = 0;
  *data = slots_.back()->data();
  return slots_.back();
}

} // namespace costream
