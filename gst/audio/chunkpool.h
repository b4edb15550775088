/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * ChunkPool: recycled sample storage for one talker's queue. Plain C++.
 *
 * A mixer input queues its talker's audio for a while (non-live, up to AHEAD_HIGH) before the
 * output reads it. Keeping each GstBuffer that long means freeing it long after it was written,
 * when its memory and bookkeeping (buffer, memory, allocator) have left the caches: with hundreds
 * of talkers that freeing grew faster than the talkers. Copying the samples into storage of the
 * talker's own, recycled in turn, lets the GstBuffer go at once, while it is hot, and keeps the
 * queue's memory to a small set of blocks used over and over.
 *
 * One thread (the talker's) takes slots; any thread may drop the references it was handed. A
 * slot is reused once the pool holds its only reference.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace costream {

class ChunkPool {
public:
  /* Storage of at least `bytes` bytes: `*data` points to it, the returned reference keeps it
   * (for Chunk::keepalive). Not thread-safe: the owner's thread only. */
  std::shared_ptr<void> take(size_t bytes, uint8_t **data);

  size_t slots() const { return slots_.size(); }

private:
  std::vector<std::shared_ptr<std::vector<uint8_t>>> slots_;
  size_t next_ = 0;
};

} // namespace costream
