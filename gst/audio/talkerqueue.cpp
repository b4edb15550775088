/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "talkerqueue.h"

#include <algorithm>
#include <cstring>
#include <limits>

namespace costream {

namespace {

/* Drift loop, in seconds: a critically damped second-order loop (natural frequency 1 rad/s)
 * tracks a constant clock offset with zero steady-state error, and the read rate glides at most
 * 1% per second (17 cents/s: inaudible on speech and on a pure tone). A talker 1% off peaks at
 * about 6 ms of timing error while the loop locks, inside one 10 ms block; 0.5% at 2.6 ms. */
#ifndef COSTREAM_LOOP_WN
#define COSTREAM_LOOP_WN 1.0
#endif
#ifndef COSTREAM_LOOP_SLEW
#define COSTREAM_LOOP_SLEW 0.01
#endif
constexpr double kLoopWn = COSTREAM_LOOP_WN;
constexpr double kLoopKp = 2.0 * kLoopWn;
constexpr double kLoopKi = kLoopWn * kLoopWn;
/* Largest change of the read rate per second: the pitch of a drifting talker glides, never
 * steps. */
constexpr double kMaxRateSlew = COSTREAM_LOOP_SLEW;
constexpr double kMaxRateOffset = 0.02;   /* +-2%: beyond that it is no clock drift */
constexpr double kEngageSeconds = 0.0015; /* timing error that turns the resampler on */
constexpr double kSnapSeconds = 0.080;    /* timing error that is fixed by a jump instead */
constexpr double kTimingSmoothing = 0.05; /* EMA weight of one chunk's timing observation */

double bessel_i0(double x) {
  double sum = 1.0, term = 1.0;
  for (int k = 1; k < 50; k++) {
    term *= (x / (2.0 * k)) * (x / (2.0 * k));
    sum += term;
    if (term < sum * 1e-12)
      break;
  }
  return sum;
}

float to_float(const uint8_t *p, SampleFormat f) {
  switch (f) {
  case SampleFormat::S16: {
    int16_t v;
    std::memcpy(&v, p, 2);
    return v / 32768.f;
  }
  case SampleFormat::S32: {
    int32_t v;
    std::memcpy(&v, p, 4);
    return static_cast<float>(v / 2147483648.0);
  }
  default: {
    float v;
    std::memcpy(&v, p, 4);
    return v;
  }
  }
}

void from_float(const float *in, size_t n, SampleFormat f, uint8_t *out) {
  switch (f) {
  case SampleFormat::S16: {
    auto *o = reinterpret_cast<int16_t *>(out);
    for (size_t i = 0; i < n; i++)
      o[i] =
          static_cast<int16_t>(std::clamp<long>(std::lrint(in[i] * 32768.f), INT16_MIN, INT16_MAX));
    break;
  }
  case SampleFormat::S32: {
    auto *o = reinterpret_cast<int32_t *>(out);
    for (size_t i = 0; i < n; i++)
      o[i] = static_cast<int32_t>(
          std::clamp<long long>(std::llrint(in[i] * 2147483648.0), INT32_MIN, INT32_MAX));
    break;
  }
  default:
    std::memcpy(out, in, n * sizeof(float));
  }
}

} // namespace

SincInterpolator::SincInterpolator() {
  constexpr int H = TalkerQueue::kHalfTaps;
  constexpr double beta = 8.0;
  const double i0b = bessel_i0(beta);
  table_.resize((kPhases + 1) * 2 * H);
  for (int p = 0; p <= kPhases; p++) {
    const double frac = static_cast<double>(p) / kPhases;
    float *row = &table_[p * 2 * H];
    double sum = 0.0;
    for (int j = 0; j < 2 * H; j++) {
      /* tap j multiplies s[j], which sits at distance (j - (H - 1)) - frac from the position */
      const double t = (j - (H - 1)) - frac;
      const double sinc = t == 0.0 ? 1.0 : std::sin(M_PI * t) / (M_PI * t);
      const double r = t / H;
      const double w = std::fabs(r) >= 1.0 ? 0.0 : bessel_i0(beta * std::sqrt(1.0 - r * r)) / i0b;
      row[j] = static_cast<float>(sinc * w);
      sum += row[j];
    }
    for (int j = 0; j < 2 * H; j++)
      row[j] = static_cast<float>(row[j] / sum);
  }
}

const SincInterpolator &SincInterpolator::get() {
  static const SincInterpolator instance;
  return instance;
}

const float *SincInterpolator::taps(double frac, float *scratch) const {
  constexpr int H2 = 2 * TalkerQueue::kHalfTaps;
  const double fp = frac * kPhases;
  int p = static_cast<int>(fp);
  p = std::clamp(p, 0, kPhases - 1);
  const float a = static_cast<float>(fp - p);
  const float *r0 = &table_[p * H2];
  if (a == 0.f)
    return r0;
  const float *r1 = r0 + H2;
  for (int j = 0; j < H2; j++)
    scratch[j] = r0[j] + a * (r1[j] - r0[j]);
  return scratch;
}

void TalkerQueue::configure(const Config &config) {
  config_ = config;
  if (config_.layout.channels == 0)
    config_.layout.channels = 1;
  if (config_.layout.rate == 0)
    config_.layout.rate = 48000;
  config_.align_threshold = std::max<int64_t>(0, config_.align_threshold);
  config_.max_ahead = std::max<int64_t>(1, config_.max_ahead);
  reset();
}

void TalkerQueue::reset() {
  if (released_)
    for (auto &s : chunks_)
      if (s.chunk.keepalive)
        released_->push_back(std::move(s.chunk.keepalive));
  chunks_.clear();
  have_written_ = false;
  write_end_ = 0;
  last_pts_ = NAN;
  last_frames_ = 0;
  reader_started_ = false;
  prepared_ = false;
  prepared_out_ = 0;
  next_out_ = 0;
  consumed_ = INT64_MIN;
  have_timing_ = false;
  werr_filtered_ = 0.0;
  correction_ = 0.0;
  delta_ = 0.0;
  integral_ = 0.0;
  engaged_ = false;
}

TalkerQueue::PushResult TalkerQueue::push(Chunk chunk, double pts, bool discont) {
  PushResult res;
  if (chunk.frames == 0 || chunk.data == nullptr)
    return res;

  const bool have_pts = std::isfinite(pts);
  int64_t pos;
  if (!have_written_) {
    if (have_pts)
      pos = std::llround(pts);
    else if (reader_started_)
      pos = static_cast<int64_t>(std::floor(reader_position(next_out_)));
    else
      pos = 0;
    first_start_ = pos;
    res.resynced = true;
  } else if (!have_pts || !std::isfinite(last_pts_)) {
    pos = write_end_;
  } else {
    /* Where the talker's timestamps put the next frame, from the (filtered) relation between
     * queue index and time, so one jittery timestamp does not shift the gap estimate. */
    const double expected = static_cast<double>(write_end_) - werr_filtered_;
    const double deviation = pts - expected;
    if (discont || std::fabs(deviation) > static_cast<double>(config_.align_threshold)) {
      pos = write_end_ + std::llround(deviation);
      res.resynced = pos != write_end_;
    } else {
      pos = write_end_;
    }
  }
  if (have_written_)
    res.gap_frames = pos - write_end_;

  /* Timing observation: where the chunk lands on the queue index versus its timestamp. */
  if (have_pts) {
    const double werr = static_cast<double>(pos) - pts;
    if (!have_timing_) {
      werr_filtered_ = werr;
      have_timing_ = true;
      if (!reader_started_)
        correction_ = std::round(werr);
    } else if (res.resynced) {
      werr_filtered_ = werr;
    } else {
      werr_filtered_ += kTimingSmoothing * (werr - werr_filtered_);
    }
    last_pts_ = pts;
  } else if (std::isfinite(last_pts_)) {
    last_pts_ += last_frames_;
  }
  last_frames_ = chunk.frames;

  /* Trim what overlaps data already queued, then what the reader has already passed. */
  int64_t trim = 0;
  if (have_written_ && pos < write_end_)
    trim = write_end_ - pos;
  if (reader_started_ && pos + trim < consumed_) {
    const int64_t late = std::min<int64_t>(consumed_ - (pos + trim), chunk.frames - trim);
    if (late > 0) {
      res.late_frames = static_cast<uint64_t>(late);
      trim += late;
    }
  }
  have_written_ = true;
  /* Bound memory: what lies further than max_ahead beyond the reader (before its first read, the
   * first frame queued) is dropped below, and does not count as written: the talker's data does
   * not reach there. */
  const int64_t limit = (reader_started_ ? consumed_ : first_start_) + config_.max_ahead;
  if (pos + trim < limit)
    write_end_ = std::max(write_end_, std::min(pos + static_cast<int64_t>(chunk.frames), limit));
  if (trim >= chunk.frames)
    return res;

  const int64_t start = pos + trim;
  const size_t bpf = config_.layout.bytes_per_frame();
  chunk.data += static_cast<size_t>(trim) * bpf;
  chunk.frames -= static_cast<uint32_t>(trim);
  /* A cut chunk is no longer the whole original buffer, nor has it that buffer's power. */
  auto cut = [&chunk] {
    chunk.tag = nullptr;
    if (!chunk.power_whole)
      chunk.power = -1.f;
  };
  if (trim > 0)
    cut();

  if (start >= limit) {
    res.overflow_frames = chunk.frames;
    return res;
  }
  if (start + chunk.frames > limit) {
    const auto keep = static_cast<uint32_t>(limit - start);
    res.overflow_frames = chunk.frames - keep;
    chunk.frames = keep;
    cut();
  }

  chunks_.push_back(Stored{start, std::move(chunk)});
  return res;
}

bool TalkerQueue::covers(int64_t out, uint32_t n) const {
  if (!have_written_)
    return false;
  double last = reader_position(out) + static_cast<double>(n) * (1.0 + delta_);
  int64_t need = static_cast<int64_t>(std::ceil(last));
  if (engaged_ || delta_ != 0.0)
    need += kHalfTaps + 1;
  return write_end_ >= need;
}

bool TalkerQueue::has_pending() const {
  if (chunks_.empty())
    return false;
  return !reader_started_ || chunks_.back().end() > consumed_;
}

void TalkerQueue::begin_read(int64_t out, uint32_t n) {
  if (prepared_ && prepared_out_ == out)
    return;
  prepared_ = true;
  prepared_out_ = out;
  if (reader_started_ && out != next_out_) {
    /* The output jumped (seek, new segment): keep the clock relation, restart the reader there. */
    consumed_ = INT64_MIN;
  }
  if (!config_.drift_correction || !have_timing_)
    return;

  const double rate = config_.layout.rate;
  const double e = (correction_ - werr_filtered_) / rate; /* seconds; > 0: reading ahead */
  if (std::fabs(e) > kSnapSeconds) {
    correction_ = std::round(werr_filtered_);
    return;
  }
  if (!engaged_ && std::fabs(e) > kEngageSeconds)
    engaged_ = true;
  if (!engaged_)
    return;
  const double dt = n / rate;
  double d = -(kLoopKp * e + kLoopKi * (integral_ + e * dt));
  if (std::fabs(d) < kMaxRateOffset)
    integral_ += e * dt; /* anti-windup: integrate only while not saturated */
  const double max_step = kMaxRateSlew * dt;
  d = std::clamp(d, delta_ - max_step, delta_ + max_step);
  delta_ = std::clamp(d, -kMaxRateOffset, kMaxRateOffset);
}

TalkerQueue::Coverage TalkerQueue::coverage(int64_t from, int64_t to) const {
  Coverage c;
  int64_t total = 0;
  double sum = 0.0;
  bool power_known = to > from;
  for_each_overlap(from, to, [&](const Stored &s, int64_t a, int64_t b) {
    total += b - a;
    if (s.chunk.power < 0.f || (!s.chunk.power_whole && (a != s.start || b != s.end())))
      power_known = false;
    else
      sum += static_cast<double>(s.chunk.power) * static_cast<double>(b - a);
  });
  c.frames = static_cast<uint32_t>(std::max<int64_t>(0, total));
  c.power = power_known ? sum / static_cast<double>(to - from) : -1.0;
  return c;
}

void TalkerQueue::drop_consumed(int64_t before) {
  /* Keep the interpolator's history behind the reader. */
  const int64_t keep_from = before - (kHalfTaps + 1);
  while (!chunks_.empty() && chunks_.front().end() <= keep_from) {
    if (released_ && chunks_.front().chunk.keepalive)
      released_->push_back(std::move(chunks_.front().chunk.keepalive));
    chunks_.pop_front();
  }
}

void TalkerQueue::copy_frames(int64_t from, uint32_t count, uint8_t *dst) const {
  const size_t bpf = config_.layout.bytes_per_frame();
  const int64_t to = from + count;
  int64_t cur = from;
  for (const auto &s : chunks_) {
    if (s.end() <= cur)
      continue;
    if (s.start >= to)
      break;
    if (s.start > cur) {
      std::memset(dst + (cur - from) * bpf, 0, static_cast<size_t>(s.start - cur) * bpf);
      cur = s.start;
    }
    const int64_t n = std::min(to, s.end()) - cur;
    std::memcpy(dst + (cur - from) * bpf, s.chunk.data + (cur - s.start) * bpf,
                static_cast<size_t>(n) * bpf);
    cur += n;
  }
  if (cur < to)
    std::memset(dst + (cur - from) * bpf, 0, static_cast<size_t>(to - cur) * bpf);
}

void TalkerQueue::gather_float(int64_t from, size_t count, float *dst) const {
  const unsigned ch = config_.layout.channels;
  const size_t ss = sample_size(config_.layout.format);
  const size_t bpf = config_.layout.bytes_per_frame();
  std::fill(dst, dst + count * ch, 0.f);
  const int64_t to = from + static_cast<int64_t>(count);
  for_each_overlap(from, to, [&](const Stored &s, int64_t a, int64_t b) {
    for (int64_t i = a; i < b; i++) {
      const uint8_t *p = s.chunk.data + (i - s.start) * bpf;
      for (unsigned c = 0; c < ch; c++)
        dst[(i - from) * ch + c] = to_float(p + c * ss, config_.layout.format);
    }
  });
}

void TalkerQueue::finish_read(int64_t out, uint32_t n, ReadResult *result) {
  const double end_pos = reader_position(out) + static_cast<double>(n) * (1.0 + delta_);
  correction_ += static_cast<double>(n) * delta_;
  const int64_t new_consumed = static_cast<int64_t>(std::floor(end_pos));
  reader_started_ = true;
  prepared_ = false;
  next_out_ = out + n;
  consumed_ = std::max(consumed_, new_consumed);
  drop_consumed(consumed_);
}

TalkerQueue::ReadResult TalkerQueue::read(int64_t out, uint32_t n, void *dst_v) {
  ReadResult res;
  auto *dst = static_cast<uint8_t *>(dst_v);
  begin_read(out, n);

  const double x0 = reader_position(out);
  /* Queued frames the reader jumps over without reading them arrived too late to be heard. */
  if (reader_started_ && consumed_ != INT64_MIN) {
    const int64_t skip_to = static_cast<int64_t>(std::floor(x0));
    if (skip_to > consumed_)
      res.late_frames += coverage(consumed_, skip_to).frames;
  } else if (!chunks_.empty()) {
    const int64_t skip_to = static_cast<int64_t>(std::floor(x0));
    if (chunks_.front().start < skip_to)
      res.late_frames += coverage(chunks_.front().start, skip_to).frames;
  }

  const bool integer_pos = delta_ == 0.0 && x0 == std::floor(x0);
  if (integer_pos) {
    const auto start = static_cast<int64_t>(x0);
    copy_frames(start, n, dst);
    const Coverage c = coverage(start, start + n);
    res.frames_with_data = c.frames;
    res.power = c.power;
  } else {
    constexpr int H = kHalfTaps;
    const unsigned ch = config_.layout.channels;
    const double step = 1.0 + delta_;
    const int64_t base = static_cast<int64_t>(std::floor(x0)) - (H - 1);
    const double last = x0 + step * (n - 1);
    const size_t span = static_cast<size_t>(std::floor(last) - std::floor(x0)) + 2 * H + 1;
    window_.resize(span * ch);
    gather_float(base, span, window_.data());
    out_float_.resize(static_cast<size_t>(n) * ch);
    const SincInterpolator &interp = SincInterpolator::get();
    float scratch[2 * H];
    for (uint32_t i = 0; i < n; i++) {
      const double pos = x0 + step * i;
      const double fl = std::floor(pos);
      const float *taps = interp.taps(pos - fl, scratch);
      const size_t off = static_cast<size_t>(static_cast<int64_t>(fl) - (H - 1) - base);
      for (unsigned c = 0; c < ch; c++) {
        const float *w = &window_[off * ch + c];
        float acc = 0.f;
        for (int j = 0; j < 2 * H; j++)
          acc += taps[j] * w[j * ch];
        out_float_[i * ch + c] = acc;
      }
    }
    from_float(out_float_.data(), out_float_.size(), config_.layout.format, dst);
    /* In output frames: the share of the input span that was there. */
    const auto a = static_cast<int64_t>(std::floor(x0));
    const auto b = static_cast<int64_t>(std::floor(last)) + 1;
    const Coverage c = coverage(a, b);
    const uint32_t present = c.frames;
    res.power = c.power;
    const auto span_frames = static_cast<uint32_t>(b - a);
    res.frames_with_data =
        present >= span_frames
            ? n
            : static_cast<uint32_t>(static_cast<uint64_t>(n) * present / span_frames);
  }
  finish_read(out, n, &res);
  return res;
}

const Chunk *TalkerQueue::take_exact(int64_t out, uint32_t n, ReadResult *result) {
  begin_read(out, n);
  if (engaged_ || delta_ != 0.0 || (reader_started_ && out != next_out_))
    return nullptr;
  const double x0 = reader_position(out);
  if (x0 != std::floor(x0))
    return nullptr;
  const auto start = static_cast<int64_t>(x0);
  for (const auto &s : chunks_) {
    if (s.start > start)
      break;
    if (s.start == start) {
      if (s.chunk.frames != n || s.chunk.tag == nullptr)
        return nullptr;
      if (reader_started_ && consumed_ != INT64_MIN && start > consumed_)
        return nullptr; /* skipped frames must be accounted by read() */
      ReadResult res;
      res.frames_with_data = n;
      res.power = s.chunk.power;
      if (result)
        *result = res;
      const Chunk *found = &s.chunk;
      /* Advancing may drop older chunks but never this one: it ends at the new position. */
      reader_started_ = true;
      prepared_ = false;
      next_out_ = out + n;
      consumed_ = std::max(consumed_, start + static_cast<int64_t>(n));
      /* Never drops `found` (it ends at consumed_, inside the kept history), and popping the
       * chunks before it leaves the pointer valid. */
      drop_consumed(consumed_);
      return found;
    }
  }
  return nullptr;
}

} // namespace costream
