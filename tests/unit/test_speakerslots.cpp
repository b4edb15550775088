/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "mixminus/speakerslots.h"

#include <catch2/catch.hpp>

#include <map>
#include <random>

using namespace costream;

namespace {

/* A room: levels per participant, stepped a block at a time; tracks the slots from the events
 * alone so the events are checked to be complete and consistent. */
struct Room {
  SpeakerSlots slots;
  std::map<uint64_t, double> level;
  std::map<uint64_t, bool> eligible;
  std::map<int, uint64_t> by_slot; /* from events */
  int pins = 0, unpins = 0;
  double block_ms = 10.0;

  explicit Room(SlotConfig cfg = {}) { slots.configure(cfg); }
  void step(int blocks = 1) {
    for (int b = 0; b < blocks; b++) {
      std::vector<SpeakerSlots::Input> in;
      for (auto &[id, l] : level)
        in.push_back({id, l, eligible.count(id) ? eligible[id] : true});
      std::vector<SlotEvent> ev;
      slots.update(in, block_ms, &ev);
      apply(ev);
    }
  }
  void apply(const std::vector<SlotEvent> &ev) {
    for (auto &e : ev) {
      if (e.kind == SlotEvent::Unpin) {
        REQUIRE(by_slot.count(e.slot));
        REQUIRE(by_slot[e.slot] == e.id);
        by_slot.erase(e.slot);
        unpins++;
      } else {
        REQUIRE(!by_slot.count(e.slot));
        by_slot[e.slot] = e.id;
        pins++;
      }
    }
    for (auto &[slot, id] : by_slot)
      REQUIRE(slots.slot_of(id) == slot);
  }
  bool holds(uint64_t id) const { return slots.slot_of(id) >= 0; }
};

} // namespace

TEST_CASE("Free slots are taken at once by speakers, never by the silent", "[slots]") {
  Room r;
  r.level = {{1, -20}, {2, -30}, {3, -60}, {4, -127}};
  r.step();
  CHECK(r.holds(1));
  CHECK(r.holds(2));
  CHECK_FALSE(r.holds(3)); /* under the speech threshold */
  CHECK_FALSE(r.holds(4));
  CHECK(r.slots.holders() == 2);
  CHECK(r.pins == 2);
  /* the loudest gets the lowest free slot */
  CHECK(r.slots.slot_of(1) == 0);
  CHECK(r.slots.slot_of(2) == 1);
  r.level[3] = -40;
  r.step();
  CHECK(r.slots.slot_of(3) == 2);
}

TEST_CASE("A challenger replaces the quietest holder after switch-hold, not before", "[slots]") {
  SlotConfig cfg;
  cfg.switch_hold_ms = 300;
  cfg.switch_threshold = 6;
  Room r(cfg);
  r.level = {{1, -20}, {2, -25}, {3, -30}};
  r.step();
  REQUIRE(r.slots.holders() == 3);
  r.level[4] = -23.9; /* 6.1 dB louder than holder 3 */
  r.step(29);
  CHECK_FALSE(r.holds(4)); /* 290 ms */
  r.step();
  CHECK(r.holds(4)); /* 300 ms */
  CHECK_FALSE(r.holds(3));
  CHECK(r.slots.slot_of(4) == 2); /* took holder 3's slot */
  CHECK(r.pins == 4);
  CHECK(r.unpins == 1);
}

TEST_CASE("An interrupted challenge starts over", "[slots]") {
  Room r;
  r.level = {{1, -20}, {2, -20}, {3, -30}};
  r.step();
  r.level[4] = -20;
  r.step(20);
  r.level[4] = -26; /* only 4 dB louder for one block */
  r.step();
  r.level[4] = -20;
  r.step(29);
  CHECK_FALSE(r.holds(4));
  r.step();
  CHECK(r.holds(4));
}

TEST_CASE("Two participants 1 dB apart at the boundary do not flap", "[slots]") {
  SlotConfig cfg;
  cfg.max_speakers = 2;
  Room r(cfg);
  std::mt19937 rng(7);
  std::normal_distribution<double> jitter(0.0, 0.7);
  r.level = {{1, -15}, {2, -30}, {3, -31}};
  r.step();
  const auto first = r.slots.slot_of(2) >= 0 ? 2u : 3u;
  const int pins_before = r.pins;
  for (int i = 0; i < 6000; i++) { /* one minute */
    r.level[2] = -30 + jitter(rng);
    r.level[3] = -31 + jitter(rng);
    r.step();
  }
  CHECK(r.pins == pins_before);
  CHECK(r.holds(first));
  CHECK(r.holds(1));
}

TEST_CASE("Holders are compared at their current level, not the level they were pinned at",
          "[slots]") {
  SlotConfig cfg;
  cfg.max_speakers = 1;
  Room r(cfg);
  r.level = {{1, -10}};
  r.step();
  REQUIRE(r.holds(1));
  /* 1 got quieter but keeps speaking; 2 is 8 dB louder than 1 now (and 12 dB quieter than 1's
   * level at pin time, which a stale comparison would use) */
  r.level[1] = -30;
  r.level[2] = -22;
  r.step(31);
  CHECK(r.holds(2));
  CHECK_FALSE(r.holds(1));
}

TEST_CASE("A holder silent for slot-timeout gives its slot up", "[slots]") {
  SlotConfig cfg;
  cfg.slot_timeout_ms = 1000;
  Room r(cfg);
  r.level = {{1, -20}};
  r.step();
  r.level[1] = -60; /* silent */
  r.step(99);
  CHECK(r.holds(1));
  r.level[1] = -20; /* speaks again: the timer restarts */
  r.step();
  r.level[1] = -60;
  r.step(99);
  CHECK(r.holds(1));
  r.step();
  CHECK_FALSE(r.holds(1));
  CHECK(r.unpins == 1);
}

TEST_CASE("Leaving, stalling or muting frees the slot at once; a free slot is refilled",
          "[slots]") {
  SlotConfig cfg;
  cfg.max_speakers = 2;
  Room r(cfg);
  r.level = {{1, -20}, {2, -21}, {3, -22}};
  r.step();
  REQUIRE(r.holds(1));
  REQUIRE(r.holds(2));
  REQUIRE_FALSE(r.holds(3));
  r.eligible[1] = false; /* muted or stalled */
  r.step();
  CHECK_FALSE(r.holds(1));
  CHECK(r.holds(3)); /* the free slot is taken in the same block */
  r.level.erase(2);  /* left */
  r.eligible.erase(1);
  r.step();
  CHECK_FALSE(r.holds(2));
  CHECK(r.holds(1));
  std::vector<SlotEvent> ev;
  r.slots.remove(3, &ev);
  r.apply(ev);
  r.level.erase(3);
  CHECK(r.by_slot.size() == 1);
}

TEST_CASE("max-speakers=0: everyone present holds a slot", "[slots]") {
  SlotConfig cfg;
  cfg.max_speakers = 0;
  Room r(cfg);
  for (uint64_t i = 1; i <= 12; i++)
    r.level[i] = -127; /* even the silent */
  r.step();
  CHECK(r.slots.holders() == 12);
  r.eligible[5] = false;
  r.step();
  CHECK(r.slots.holders() == 11);
  CHECK_FALSE(r.holds(5));
  std::vector<SlotEvent> ev;
  r.slots.clear(&ev);
  r.apply(ev);
  CHECK(r.by_slot.empty());
}
