/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "speakerslots.h"

#include <algorithm>

namespace costream {

void SpeakerSlots::configure(const SlotConfig &config) {
  const bool size_changed = config.max_speakers != config_.max_speakers;
  config_ = config;
  if (size_changed && config_.max_speakers > 0) {
    /* fewer slots: the ones beyond the new count are freed by the next update */
    used_.resize(std::max<size_t>(used_.size(), config_.max_speakers), false);
  }
}

SpeakerSlots::State *SpeakerSlots::find(uint64_t id) {
  for (auto &s : states_)
    if (s.id == id)
      return &s;
  return nullptr;
}

const SpeakerSlots::State *SpeakerSlots::find(uint64_t id) const {
  for (auto &s : states_)
    if (s.id == id)
      return &s;
  return nullptr;
}

int SpeakerSlots::free_slot() const {
  const size_t limit = config_.max_speakers > 0 ? config_.max_speakers : SIZE_MAX;
  for (size_t i = 0; i < used_.size() && i < limit; i++)
    if (!used_[i])
      return static_cast<int>(i);
  if (used_.size() < limit)
    return static_cast<int>(used_.size());
  return -1;
}

void SpeakerSlots::pin(State &s, int slot, std::vector<SlotEvent> *events) {
  if (static_cast<size_t>(slot) >= used_.size())
    used_.resize(slot + 1, false);
  used_[slot] = true;
  s.slot = slot;
  s.silent_ms = 0.0;
  s.challenge_ms = 0.0;
  events->push_back({SlotEvent::Pin, slot, s.id});
}

void SpeakerSlots::unpin(State &s, std::vector<SlotEvent> *events) {
  if (s.slot < 0)
    return;
  used_[s.slot] = false;
  events->push_back({SlotEvent::Unpin, s.slot, s.id});
  s.slot = -1;
  s.silent_ms = 0.0;
  s.challenge_ms = 0.0;
}

SpeakerSlots::State *SpeakerSlots::quietest_holder() {
  State *q = nullptr;
  for (auto &s : states_)
    if (s.slot >= 0 && (!q || s.level < q->level))
      q = &s;
  return q;
}

void SpeakerSlots::update(const std::vector<Input> &inputs, double block_ms,
                          std::vector<SlotEvent> *events) {
  std::vector<SlotEvent> unpins, pins;
  for (auto &s : states_)
    s.seen = false;
  for (size_t i = 0; i < inputs.size(); i++) {
    const auto &in = inputs[i];
    /* The same participants arrive in the same order block after block: O(1) then. */
    State *s = i < states_.size() && states_[i].id == in.id ? &states_[i] : find(in.id);
    if (!s) {
      states_.push_back(State{in.id});
      s = &states_.back();
    }
    s->seen = true;
    s->eligible = in.eligible;
    s->level = in.eligible ? in.level : -127.0;
    s->speaking = in.eligible && in.level >= config_.speech_threshold;
    if (!in.eligible)
      unpin(*s, &unpins);
  }
  /* Participants no longer listed are gone. */
  for (auto &s : states_)
    if (!s.seen)
      unpin(s, &unpins);
  states_.erase(
      std::remove_if(states_.begin(), states_.end(), [](const State &s) { return !s.seen; }),
      states_.end());

  if (config_.max_speakers == 0) {
    /* Everyone eligible is heard. */
    for (auto &s : states_)
      if (s.eligible && s.slot < 0)
        pin(s, free_slot(), &pins);
    events->insert(events->end(), unpins.begin(), unpins.end());
    events->insert(events->end(), pins.begin(), pins.end());
    return;
  }

  /* Slots beyond a lowered max-speakers are freed. */
  for (auto &s : states_)
    if (s.slot >= static_cast<int>(config_.max_speakers))
      unpin(s, &unpins);

  /* Holders that stopped speaking give their slot up after the timeout. */
  for (auto &s : states_) {
    if (s.slot < 0)
      continue;
    if (s.speaking) {
      s.silent_ms = 0.0;
    } else {
      s.silent_ms += block_ms;
      if (s.silent_ms >= config_.slot_timeout_ms)
        unpin(s, &unpins);
    }
  }

  /* Speaking participants without a slot, loudest first. */
  auto candidates = [this]() {
    std::vector<State *> c;
    for (auto &s : states_)
      if (s.slot < 0 && s.speaking)
        c.push_back(&s);
    std::stable_sort(c.begin(), c.end(),
                     [](const State *a, const State *b) { return a->level > b->level; });
    return c;
  };

  /* Free slots are taken at once. */
  for (State *c : candidates()) {
    const int slot = free_slot();
    if (slot < 0)
      break;
    pin(*c, slot, &pins);
  }

  /* All slots taken: challengers must beat the quietest holder by the margin, long enough. */
  for (auto &s : states_)
    if (s.slot < 0 && !s.speaking)
      s.challenge_ms = 0.0;
  if (State *q = quietest_holder(); q && free_slot() < 0) {
    for (State *c : candidates()) {
      if (c->level >= q->level + config_.switch_threshold)
        c->challenge_ms += block_ms;
      else
        c->challenge_ms = 0.0;
    }
    for (State *c : candidates()) {
      if (c->challenge_ms < config_.switch_hold_ms)
        continue;
      State *quiet = quietest_holder();
      if (!quiet || c->level < quiet->level + config_.switch_threshold)
        continue;
      const int slot = quiet->slot;
      unpin(*quiet, &unpins);
      pin(*c, slot, &pins);
    }
  }
  events->insert(events->end(), unpins.begin(), unpins.end());
  events->insert(events->end(), pins.begin(), pins.end());
}

void SpeakerSlots::remove(uint64_t id, std::vector<SlotEvent> *events) {
  State *s = find(id);
  if (!s)
    return;
  unpin(*s, events);
  states_.erase(states_.begin() + (s - states_.data()));
}

void SpeakerSlots::clear(std::vector<SlotEvent> *events) {
  for (auto &s : states_)
    unpin(s, events);
  states_.clear();
}

int SpeakerSlots::slot_of(uint64_t id) const {
  const State *s = find(id);
  return s ? s->slot : -1;
}

int SpeakerSlots::slot_of(uint64_t id, size_t hint) const {
  if (hint < states_.size() && states_[hint].id == id)
    return states_[hint].slot;
  return slot_of(id);
}

bool SpeakerSlots::speaking(uint64_t id) const {
  const State *s = find(id);
  return s && s->speaking;
}

size_t SpeakerSlots::holders() const {
  size_t n = 0;
  for (auto &s : states_)
    n += s.slot >= 0;
  return n;
}

} // namespace costream
