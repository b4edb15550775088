/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The sample formats the costream mixers work in. Plain C++: no GStreamer types, so the
 * kernels and queues built on it are unit-tested and fuzzed directly.
 */
#pragma once

#include <cstddef>
#include <cstdint>

namespace costream {

enum class SampleFormat { S16, S32, F32 };

constexpr size_t sample_size(SampleFormat f) {
  return f == SampleFormat::S16 ? 2 : 4;
}

/* Interleaved layout: a frame is one sample per channel. */
struct AudioLayout {
  SampleFormat format = SampleFormat::S16;
  unsigned channels = 1;
  unsigned rate = 48000;

  size_t bytes_per_frame() const { return sample_size(format) * channels; }
  bool operator==(const AudioLayout &o) const {
    return format == o.format && channels == o.channels && rate == o.rate;
  }
  bool operator!=(const AudioLayout &o) const { return !(*this == o); }
};

} // namespace costream
