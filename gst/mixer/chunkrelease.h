/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * costream::ChunkRelease: who frees the audio a talker's queue has passed, and when. The one
 * hand-off between the talkers' streaming threads and the mixer's output thread for chunk memory.
 *
 * A chunk's storage (a GstBuffer, or a ChunkPool slab) is allocated by the talker's streaming
 * thread and read by the output thread, which reads a block under the data lock and mixes it after
 * the lock, reading chunks where they lie (no reference per chunk and block: that would be an
 * atomic on a cold cache line per talker per block). So the storage of what the queue passed
 * cannot simply be freed when it is passed:
 *   - Normally it goes back to the talker's own thread, which frees it with its next buffer, after
 *     the data lock: in the thread that allocated it (the allocator's thread-local path, not
 *     another thread's arena lock) and spread over the talkers' threads instead of the one output
 *     thread (at 256 participants, freeing input buffers was a third of the output's time).
 *   - A talker that is not coming back soon (ended, flushing, or with more than kMaxKept chunks
 *     waiting) while not waiting for room: the output thread frees them, after the lock.
 *   - A queue emptied while a block is in flight (a talker's flush): its chunks may still be read
 *     in place, so they wait for the block to be done.
 *
 * Pure C++ (no GStreamer): each method says its thread and lock; "data lock" is the mixer's
 * `priv->lock`, which the caller holds.
 */
#pragma once

#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

namespace costream {

using Keepalive = std::shared_ptr<void>;
using KeepaliveList = std::vector<Keepalive>;

class ChunkRelease {
public:
  /* Chunks a talker keeps beyond this many go to the output thread to free. */
  static constexpr size_t kMaxKept = 32;

  /* One talker's share. */
  class Talker {
  public:
    /* (data lock, output thread) Where the talker's queue puts what it passes while a block is
     * read (TalkerQueue::release_into). */
    KeepaliveList *passed() { return &passed_; }
    /* (data lock, talker thread) Takes what the output passed, for free_taken() after the lock. */
    void take() { taking_.swap(passed_); }
    /* (talker thread, no lock) */
    void free_taken() { taking_.clear(); }
    size_t kept() const { return passed_.size(); }

    /* Talker thread: take() under the lock, freed when the guard goes, after the lock (declare
     * the guard before the lock). */
    class Guard {
    public:
      explicit Guard(Talker &t) : t_(t) {}
      ~Guard() { t_.free_taken(); }
      void take() { t_.take(); }
      Guard(const Guard &) = delete;
      Guard &operator=(const Guard &) = delete;

    private:
      Talker &t_;
    };

  private:
    friend class ChunkRelease;
    KeepaliveList passed_; /* data lock */
    KeepaliveList taking_; /* the talker's thread */
  };

  /* (data lock, output thread) After reading a talker's block: what its queue passed stays for
   * the talker's thread, unless the talker is not coming back soon (`gone`: ended or flushing, or
   * more than kMaxKept waiting) while it does not wait for room (`waiting`: it takes them when it
   * wakes). Those are the output's to free (free_read()). */
  void after_read(Talker &t, bool waiting, bool gone) {
    if ((waiting || t.passed_.size() <= kMaxKept) && !gone)
      return;
    for (auto &c : t.passed_)
      read_.push_back(std::move(c));
    t.passed_.clear();
  }
  /* (output thread, no lock) Frees what after_read() handed to the output. */
  void free_read() { read_.clear(); }

  /* (data lock, output thread) A block has been read: chunks read in place must live until
   * block_done(). */
  void block_read() { in_flight_ = true; }
  /* (data lock, any thread) Where a queue being emptied (TalkerQueue::reset on a talker's flush)
   * puts its chunks: kept for the block in flight, or nullptr (freed at once) when none is. */
  KeepaliveList *for_flush() { return in_flight_ ? &deferred_ : nullptr; }
  /* (data lock, output thread) The block is mixed and pushed. Returns what waited for it, for the
   * caller to free after the lock. */
  KeepaliveList block_done() {
    in_flight_ = false;
    KeepaliveList out;
    out.swap(deferred_);
    return out;
  }
  bool in_flight() const { return in_flight_; }

private:
  KeepaliveList read_;     /* the output thread (filled with the data lock held) */
  bool in_flight_ = false; /* data lock */
  KeepaliveList deferred_; /* data lock */
};

} // namespace costream
