/* costream measurement
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * How mixminus' smoothed level (costream::LevelMeter, 10 ms blocks) moves on real speech, to
 * choose speech-threshold, slot-timeout, switch-threshold and switch-hold from data.
 *
 *   speech-levels A.wav B.wav
 *
 * Both files: 16-bit mono PCM WAV (e.g. from espeak-ng), each scaled to an active speech level
 * of -26 dBov (the ITU-T P.56 nominal level), over a -65 dBov noise floor. Prints:
 *  - the smoothed level's percentiles while speaking;
 *  - per speech threshold: the share of speech time below it, the longest dip below it inside
 *    the utterance (a slot-timeout shorter than that drops a talker mid-sentence), and how long
 *    after the end of speech the level stays above it;
 *  - A and B talking at the same loudness: how often and for how long one is louder than the
 *    other by X dB (a switch-threshold/switch-hold pair that this exceeds would flap between
 *    equally loud talkers).
 */
#include "audio/level.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <vector>

namespace {

bool read_wav(const char *path, std::vector<double> *out, int *rate) {
  std::ifstream f(path, std::ios::binary);
  std::vector<char> d((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (d.size() < 44 || std::memcmp(d.data(), "RIFF", 4) || std::memcmp(d.data() + 8, "WAVE", 4))
    return false;
  size_t pos = 12;
  int channels = 0, bits = 0;
  while (pos + 8 <= d.size()) {
    uint32_t len;
    std::memcpy(&len, d.data() + pos + 4, 4);
    if (pos + 8 + len > d.size())
      len = static_cast<uint32_t>(d.size() - pos - 8);
    if (!std::memcmp(d.data() + pos, "fmt ", 4) && len >= 16) {
      int16_t ch, bps;
      int32_t r;
      std::memcpy(&ch, d.data() + pos + 10, 2);
      std::memcpy(&r, d.data() + pos + 12, 4);
      std::memcpy(&bps, d.data() + pos + 22, 2);
      channels = ch;
      *rate = r;
      bits = bps;
    } else if (!std::memcmp(d.data() + pos, "data", 4)) {
      if (channels != 1 || bits != 16)
        return false;
      for (size_t i = 0; i + 1 < len; i += 2) {
        int16_t s;
        std::memcpy(&s, d.data() + pos + 8 + i, 2);
        out->push_back(s / 32768.0);
      }
      return true;
    }
    pos += 8 + len + (len & 1);
  }
  return false;
}

/* Smoothed level per 10 ms block; `active` marks blocks whose own power is within 30 dB of the
 * loudest block (speech, not the pauses). */
std::vector<double> levels(std::vector<double> x, int rate, std::vector<bool> *active) {
  const size_t block = rate / 100;
  double p = 0;
  for (double v : x)
    p += v * v;
  p /= x.size();
  /* P.56-like: scale the speech part (blocks above -50 dB of the peak) to -26 dBov */
  std::vector<double> bp;
  for (size_t b = 0; b + block <= x.size(); b += block) {
    double e = 0;
    for (size_t i = b; i < b + block; i++)
      e += x[i] * x[i];
    bp.push_back(e / block);
  }
  const double peak = *std::max_element(bp.begin(), bp.end());
  double sp = 0;
  size_t n = 0;
  for (double e : bp)
    if (e > peak * 1e-5) {
      sp += e;
      n++;
    }
  const double gain = std::sqrt(std::pow(10.0, -26.0 / 10.0) * 2.0 / (sp / n)); /* dBov: +3 */
  std::mt19937 rng(1);
  std::normal_distribution<double> noise(0.0, std::pow(10.0, (-65.0 - 3.0) / 20.0));
  std::vector<float> f(x.size());
  for (size_t i = 0; i < x.size(); i++)
    f[i] = static_cast<float>(x[i] * gain + noise(rng));
  costream::LevelMeter meter;
  meter.configure();
  std::vector<double> out;
  for (size_t b = 0, k = 0; b + block <= f.size(); b += block, k++) {
    out.push_back(
        meter.update(costream::block_power(&f[b], block, costream::SampleFormat::F32), 10.0));
    active->push_back(bp[k] > peak * 1e-3);
  }
  return out;
}

double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * (v.size() - 1))];
}

} // namespace

int main(int argc, char **argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s A.wav B.wav (16-bit mono)\n", argv[0]);
    return 2;
  }
  std::vector<double> xa, xb;
  int ra = 0, rb = 0;
  if (!read_wav(argv[1], &xa, &ra) || !read_wav(argv[2], &xb, &rb)) {
    std::fprintf(stderr, "could not read the WAV files (16-bit mono PCM)\n");
    return 1;
  }
  std::vector<bool> aa, ab;
  auto la = levels(xa, ra, &aa);
  auto lb = levels(xb, rb, &ab);

  for (int t = 0; t < 2; t++) {
    const auto &l = t ? lb : la;
    const auto &act = t ? ab : aa;
    size_t first = 0, last = 0;
    std::vector<double> speech;
    for (size_t i = 0; i < l.size(); i++)
      if (act[i]) {
        if (speech.empty())
          first = i;
        last = i;
        speech.push_back(l[i]);
      }
    std::printf("## talker %s: %.1f s, speech from %.2f s to %.2f s\n", t ? "B" : "A",
                l.size() / 100.0, first / 100.0, last / 100.0);
    std::printf("smoothed level while speaking: p5 %.1f, p50 %.1f, p95 %.1f dBov\n",
                percentile(speech, 0.05), percentile(speech, 0.5), percentile(speech, 0.95));
    std::printf("| threshold dBov | speech time below | longest dip below, inside the utterance "
                "| stays above after the last word |\n|---|---|---|---|\n");
    for (double th : {-35.0, -40.0, -45.0, -50.0, -55.0}) {
      size_t below = 0, run = 0, longest = 0;
      for (size_t i = first; i <= last; i++) {
        below += l[i] < th;
        run = l[i] < th ? run + 1 : 0;
        longest = std::max(longest, run);
      }
      size_t after = 0;
      while (last + after < l.size() && l[last + after] >= th)
        after++;
      std::printf("| %.0f | %.1f %% | %zu ms | %zu ms |\n", th, 100.0 * below / (last - first + 1),
                  longest * 10, after * 10);
    }
    std::printf("\n");
  }

  std::printf("## A and B at the same loudness, blocks where both are talking\n");
  std::printf("| X dB | blocks where B > A + X | longest run of B > A + X |\n|---|---|---|\n");
  const size_t n = std::min(la.size(), lb.size());
  for (double x : {3.0, 6.0, 9.0, 12.0}) {
    size_t count = 0, run = 0, longest = 0, both = 0;
    for (size_t i = 0; i < n; i++) {
      if (!aa[i] || !ab[i])
        continue;
      both++;
      const bool louder = lb[i] > la[i] + x;
      count += louder;
      run = louder ? run + 1 : 0;
      longest = std::max(longest, run);
    }
    std::printf("| %.0f | %.1f %% | %zu ms |\n", x, 100.0 * count / both, longest * 10);
  }
  return 0;
}
