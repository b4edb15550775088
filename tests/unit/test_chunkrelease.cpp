/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "mixer/chunkrelease.h"

#include <catch2/catch.hpp>

#include <thread>

using namespace costream;

namespace {

/* Chunk storage that records which thread freed it. */
struct Frees {
  int count = 0;
  std::vector<std::thread::id> by;
  Keepalive make() {
    return Keepalive(new int(0), [this](int *p) {
      delete p;
      count++;
      by.push_back(std::this_thread::get_id());
    });
  }
};

/* What the queue does while the output reads a block: it passes `n` chunks into the sink. */
void pass(Frees &f, ChunkRelease::Talker &t, int n) {
  for (int i = 0; i < n; i++)
    t.passed()->push_back(f.make());
}

} // namespace

TEST_CASE("chunks the output passed are freed by the talker's own thread") {
  Frees f;
  ChunkRelease r;
  ChunkRelease::Talker t;
  pass(f, t, 3);
  r.after_read(t, false, false);
  r.free_read();
  CHECK(f.count == 0); /* kept for the talker */
  CHECK(t.kept() == 3);
  std::thread talker([&] {
    ChunkRelease::Talker::Guard g(t);
    g.take();            /* under the data lock */
    CHECK(f.count == 0); /* not yet: after the lock */
  });
  talker.join();
  REQUIRE(f.count == 3);
  for (auto id : f.by)
    CHECK(id != std::this_thread::get_id());
  CHECK(t.kept() == 0);
}

TEST_CASE("the output frees them when the talker is gone or too far behind") {
  Frees f;
  ChunkRelease r;
  SECTION("ended or flushing") {
    ChunkRelease::Talker t;
    pass(f, t, 2);
    r.after_read(t, false, true);
    CHECK(t.kept() == 0);
    CHECK(f.count == 0); /* not under the data lock */
    r.free_read();
    CHECK(f.count == 2);
  }
  SECTION("more than kMaxKept waiting, talker not waiting for room") {
    ChunkRelease::Talker t;
    pass(f, t, static_cast<int>(ChunkRelease::kMaxKept));
    r.after_read(t, false, false);
    CHECK(t.kept() == ChunkRelease::kMaxKept); /* at the limit: still the talker's */
    pass(f, t, 1);
    r.after_read(t, false, false);
    CHECK(t.kept() == 0);
    r.free_read();
    CHECK(f.count == static_cast<int>(ChunkRelease::kMaxKept) + 1);
  }
  SECTION("a talker waiting for room keeps them however many (it takes them when it wakes)") {
    ChunkRelease::Talker t;
    pass(f, t, static_cast<int>(ChunkRelease::kMaxKept) * 3);
    r.after_read(t, true, false);
    r.free_read();
    CHECK(f.count == 0);
    CHECK(t.kept() == ChunkRelease::kMaxKept * 3);
    /* ...unless it is gone */
    r.after_read(t, true, true);
    r.free_read();
    CHECK(f.count == static_cast<int>(ChunkRelease::kMaxKept) * 3);
  }
}

TEST_CASE("a flush during a block in flight keeps the chunks until the block is done") {
  Frees f;
  ChunkRelease r;
  CHECK(r.for_flush() == nullptr); /* no block in flight: a flush frees at once */
  r.block_read();
  REQUIRE(r.in_flight());
  KeepaliveList *sink = r.for_flush();
  REQUIRE(sink != nullptr);
  sink->push_back(f.make()); /* what TalkerQueue::reset moves there */
  sink->push_back(f.make());
  CHECK(f.count == 0); /* the output may still be reading them in place */
  KeepaliveList done = r.block_done();
  CHECK_FALSE(r.in_flight());
  CHECK(f.count == 0); /* the caller frees them after the lock */
  CHECK(done.size() == 2);
  done.clear();
  CHECK(f.count == 2);
  CHECK(r.for_flush() == nullptr);
  CHECK(r.block_done().empty());
}
