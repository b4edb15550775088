/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * SpeakerSlots: who is heard in a mix-minus room. Pure (no GStreamer): fed every participant's
 * smoothed level once per block, it keeps up to `max_speakers` slot holders and reports every
 * pin and unpin.
 *
 * Rules (max_speakers > 0):
 *  - A participant is speaking when its level is at or above `speech_threshold` (dBov).
 *  - A free slot is taken at once by the loudest speaking participant without one.
 *  - With every slot taken, a speaking challenger replaces the quietest holder only when it has
 *    been louder than that holder by `switch_threshold` dB for `switch_hold_ms` without a break.
 *    Holders' levels are the current ones, every block (never the level they had when pinned).
 *  - A holder that has not been speaking for `slot_timeout_ms` gives its slot up.
 *  - A participant that is not eligible (left, stalled, muted) loses its slot at once.
 * max_speakers == 0: every eligible participant holds a slot (everyone hears everyone else).
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace costream {

struct SlotConfig {
  unsigned max_speakers = 3;
  double speech_threshold = -45.0; /* dBov */
  double switch_threshold = 6.0;   /* dB */
  double switch_hold_ms = 300.0;
  double slot_timeout_ms = 1500.0;
};

struct SlotEvent {
  enum Kind { Pin, Unpin };
  Kind kind;
  int slot;
  uint64_t id;
};

class SpeakerSlots {
public:
  struct Input {
    uint64_t id;
    double level;  /* smoothed dBov */
    bool eligible; /* present and not muted */
  };

  void configure(const SlotConfig &config);
  const SlotConfig &config() const { return config_; }

  /* One block: `inputs` lists every participant (anyone missing is treated as gone). Appends the
   * changes to `events` (unpins before pins). */
  void update(const std::vector<Input> &inputs, double block_ms, std::vector<SlotEvent> *events);
  /* A participant left: frees its slot (appends an unpin if it held one). */
  void remove(uint64_t id, std::vector<SlotEvent> *events);
  /* Frees every slot (appends the unpins). */
  void clear(std::vector<SlotEvent> *events);

  int slot_of(uint64_t id) const; /* -1 when none */
  /* The same, O(1) when `hint` is the participant's position in the last update's inputs. */
  int slot_of(uint64_t id, size_t hint) const;
  bool speaking(uint64_t id) const;
  size_t holders() const;

private:
  struct State {
    uint64_t id;
    int slot = -1;
    bool speaking = false;
    double level = -127.0;
    double silent_ms = 0.0;    /* holder: time since it last spoke */
    double challenge_ms = 0.0; /* non-holder: time it has been beating the quietest holder */
    bool seen = false;
    bool eligible = false;
  };
  State *find(uint64_t id);
  const State *find(uint64_t id) const;
  int free_slot() const;
  void pin(State &s, int slot, std::vector<SlotEvent> *events);
  void unpin(State &s, std::vector<SlotEvent> *events);
  State *quietest_holder();

  SlotConfig config_;
  std::vector<State> states_;
  std::vector<bool> used_; /* slot index -> taken */
};

} // namespace costream
