/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "testsig.h"

#include <algorithm>
#include <cmath>
#include <random>

namespace testsig {

std::vector<double> tone(double freq, double rate, size_t n, double amplitude, double phase) {
  std::vector<double> v(n);
  for (size_t i = 0; i < n; i++)
    v[i] = amplitude * std::sin(2 * M_PI * freq * i / rate + phase);
  return v;
}

namespace {

/* Least-squares fit of a*sin + b*cos + c; returns the fitted energy fraction and amplitude. */
struct Fit {
  double amplitude;
  double residual_power;
  double signal_power;
};

Fit fit(const double *x, size_t n, double freq, double rate) {
  /* Joint fit with a DC term: centre the signal and both basis functions (over a non-integer
   * number of cycles sin and cos have a mean of their own). */
  const double w = 2 * M_PI * freq / rate;
  double mean = 0, ms = 0, mc = 0;
  for (size_t i = 0; i < n; i++) {
    mean += x[i];
    ms += std::sin(w * i);
    mc += std::cos(w * i);
  }
  mean /= n;
  ms /= n;
  mc /= n;
  double ss = 0, cc = 0, sc = 0, xs = 0, xc = 0, xx = 0;
  for (size_t i = 0; i < n; i++) {
    const double s = std::sin(w * i) - ms, c = std::cos(w * i) - mc, v = x[i] - mean;
    ss += s * s;
    cc += c * c;
    sc += s * c;
    xs += v * s;
    xc += v * c;
    xx += v * v;
  }
  const double det = ss * cc - sc * sc;
  double a = 0, b = 0;
  if (std::fabs(det) > 1e-12) {
    a = (xs * cc - xc * sc) / det;
    b = (xc * ss - xs * sc) / det;
  }
  const double fitted = a * xs + b * xc; /* projection energy */
  Fit f;
  f.amplitude = std::sqrt(a * a + b * b);
  f.signal_power = fitted / n;
  f.residual_power = std::max(0.0, xx - fitted) / n;
  return f;
}

} // namespace

double amplitude_at(const double *x, size_t n, double freq, double rate) {
  return fit(x, n, freq, rate).amplitude;
}

double estimate_frequency(const double *x, size_t n, double rate, double f_lo, double f_hi) {
  double best_f = f_lo, best_e = -1;
  const int steps = 40;
  for (int k = 0; k <= steps; k++) {
    const double f = f_lo + (f_hi - f_lo) * k / steps;
    const double e = fit(x, n, f, rate).signal_power;
    if (e > best_e) {
      best_e = e;
      best_f = f;
    }
  }
  double lo = std::max(f_lo, best_f - (f_hi - f_lo) / steps);
  double hi = std::min(f_hi, best_f + (f_hi - f_lo) / steps);
  for (int it = 0; it < 30; it++) {
    const double m1 = lo + (hi - lo) / 3, m2 = hi - (hi - lo) / 3;
    if (fit(x, n, m1, rate).signal_power < fit(x, n, m2, rate).signal_power)
      lo = m1;
    else
      hi = m2;
  }
  return (lo + hi) / 2;
}

double amplitude_near(const double *x, size_t n, double freq, double rate, double tolerance) {
  const double f = estimate_frequency(x, n, rate, freq * (1 - tolerance), freq * (1 + tolerance));
  return amplitude_at(x, n, f, rate);
}

double tone_snr_db(const double *x, size_t n, double freq, double rate) {
  const double f = estimate_frequency(x, n, rate, freq * 0.98, freq * 1.02);
  const Fit ft = fit(x, n, f, rate);
  if (ft.residual_power <= 0)
    return 200.0;
  return 10 * std::log10(ft.signal_power / ft.residual_power);
}

Purity tone_purity(const std::vector<double> &x, double freq, double rate, size_t window) {
  std::vector<double> snrs;
  Purity p{200.0, 200.0, 0};
  for (size_t start = 0; start + window <= x.size(); start += window) {
    const double s = tone_snr_db(&x[start], window, freq, rate);
    snrs.push_back(s);
    if (s < p.worst_snr_db) {
      p.worst_snr_db = s;
      p.worst_window = snrs.size() - 1;
    }
  }
  if (!snrs.empty()) {
    std::sort(snrs.begin(), snrs.end());
    p.median_snr_db = snrs[snrs.size() / 2];
  }
  return p;
}

double max_step(const std::vector<double> &x) {
  double m = 0;
  for (size_t i = 1; i < x.size(); i++)
    m = std::max(m, std::fabs(x[i] - x[i - 1]));
  return m;
}

double dropout_fraction(const std::vector<double> &x, double freq, double rate, size_t window,
                        double min_amp) {
  size_t windows = 0, out = 0;
  for (size_t at = 0; at + window <= x.size(); at += window) {
    windows++;
    if (amplitude_near(&x[at], window, freq, rate) < min_amp)
      out++;
  }
  return windows ? static_cast<double>(out) / windows : 0.0;
}

std::vector<double> speechlike(double rate, size_t n, double peak, unsigned seed) {
  std::vector<double> x(n);
  std::mt19937 rng(seed);
  std::normal_distribution<double> noise(0.0, 1.0);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  double phase = 0, r1[2] = {0, 0}, r2[2] = {0, 0};
  /* a two-pole resonance at f with bandwidth bw */
  auto resonate = [rate](double in, double f, double bw, double st[2]) {
    const double r = std::exp(-M_PI * bw / rate), th = 2 * M_PI * f / rate;
    const double y = in + 2 * r * std::cos(th) * st[0] - r * r * st[1];
    st[1] = st[0];
    st[0] = y;
    return y;
  };
  /* syllables of 100-300 ms with gaps of 30-250 ms, drawn from the seed: no period, so a copy
   * lines up with its source at one delay only */
  size_t syl_start = 0, syl_len = 0, next_start = 0;
  for (size_t i = 0; i < n; i++) {
    if (i >= next_start) {
      syl_start = i;
      syl_len = static_cast<size_t>((0.10 + 0.20 * u(rng)) * rate);
      next_start = syl_start + syl_len + static_cast<size_t>((0.03 + 0.22 * u(rng)) * rate);
    }
    const double t = i / rate;
    phase += (120 + 30 * std::sin(2 * M_PI * 0.7 * t)) / rate;
    double src = 0.02 * noise(rng);
    if (phase >= 1) {
      phase -= 1;
      src += 1;
    }
    double v = resonate(src, 600 + 200 * std::sin(2 * M_PI * 1.3 * t), 80, r1);
    v = resonate(v, 1200 + 300 * std::sin(2 * M_PI * 0.9 * t), 120, r2);
    const size_t in_syl = i - syl_start;
    const double syllable =
        in_syl < syl_len ? std::pow(std::sin(M_PI * in_syl / static_cast<double>(syl_len)), 2)
                         : 0.0;
    x[i] = v * syllable;
  }
  double m = 0;
  for (double v : x)
    m = std::max(m, std::fabs(v));
  for (double &v : x)
    v = m > 0 ? v / m * peak : 0;
  return x;
}

namespace {
double rms_at(const std::vector<double> &x, size_t at, size_t n) {
  double s = 0;
  for (size_t i = at; i < at + n; i++)
    s += x[i] * x[i];
  return std::sqrt(s / n);
}
} // namespace

EnvelopeMatch match_envelopes(const std::vector<double> &src, const std::vector<double> &out,
                              double rate, size_t window, size_t max_lag, size_t from) {
  EnvelopeMatch m;
  const size_t hop = std::max<size_t>(1, static_cast<size_t>(rate / 1000));
  auto envelope = [&](const std::vector<double> &x) {
    std::vector<double> e;
    for (size_t at = 0; at + window <= x.size(); at += hop)
      e.push_back(rms_at(x, at, window));
    return e;
  };
  const auto es = envelope(src), eo = envelope(out);
  if (es.empty() || eo.empty())
    return m;
  auto corr = [&](long from, long to,
                  long k) { /* es[from, to) against eo shifted by k */
                            double c = 0;
                            for (long j = std::max(0L, from);
                                 j < to && j < static_cast<long>(es.size()); j++)
                              if (j + k >= 0 && j + k < static_cast<long>(eo.size()))
                                c += es[j] * eo[j + k];
                            return c;
  };
  /* The delay over the whole first... */
  const double es_max = *std::max_element(es.begin(), es.end());
  double best = -1;
  long lag = 0;
  for (long k = 0; static_cast<size_t>(k) * hop <= max_lag && k < static_cast<long>(eo.size());
       k++) {
    const double c = corr(0, static_cast<long>(es.size()), k);
    if (c > best) {
      best = c;
      lag = k;
    }
  }
  m.lag = lag * static_cast<long>(hop);
  /* ...then followed (a live mixer may play a talker up to 2 % fast or slow while it absorbs
   * a timing step, so the delay drifts): every 100 ms, the delay within 60 ms of the last one
   * that best lines up the 600 ms around (normalised correlation of the envelopes); in a pause
   * the last one is kept. A lost packet or two barely moves that, so they still show. */
  auto ncorr = [&](long from, long to, long k) {
    double c = 0, e = 0;
    for (long j = std::max(0L, from); j < to && j < static_cast<long>(es.size()); j++)
      if (j + k >= 0 && j + k < static_cast<long>(eo.size())) {
        c += es[j] * eo[j + k];
        e += eo[j + k] * eo[j + k];
      }
    return e > 0 ? c / std::sqrt(e) : 0.0;
  };
  double loudest_src = 0;
  for (size_t at = 0; at + window <= src.size(); at += window)
    loudest_src = std::max(loudest_src, rms_at(src, at, window));
  std::vector<std::pair<double, double>> pairs; /* src, out per compared window */
  std::vector<bool> counted;
  long segment = -1;
  for (size_t at = 0; at + window <= src.size(); at += window) {
    const long j = static_cast<long>(at / hop);
    if (j / 100 != segment) {
      segment = j / 100;
      const long mid = segment * 100 + 50;
      double energy = 0;
      for (long i = std::max(0L, mid - 300); i < mid + 300 && i < static_cast<long>(es.size()); i++)
        energy += es[i];
      if (energy > 0.01 * es_max * 600) {
        double b = -1;
        long pick = lag;
        for (long k = std::max(0L, lag - 60); k <= lag + 60; k++) {
          const double c = ncorr(mid - 300, mid + 300, k);
          if (c > b) {
            b = c;
            pick = k;
          }
        }
        lag = pick;
      }
    }
    const long o = static_cast<long>(at) + lag * static_cast<long>(hop);
    if (o < 0 || static_cast<size_t>(o) + window > out.size())
      continue;
    pairs.emplace_back(rms_at(src, at, window), rms_at(out, static_cast<size_t>(o), window));
    counted.push_back(at >= from);
  }
  std::vector<double> ratios;
  for (auto &p : pairs)
    if (p.first >= 0.03 * loudest_src)
      ratios.push_back(p.second / p.first);
  if (ratios.empty())
    return m;
  std::nth_element(ratios.begin(), ratios.begin() + ratios.size() / 2, ratios.end());
  m.gain = ratios[ratios.size() / 2];
  double loudest_out = 0;
  for (size_t i = 0; i < pairs.size(); i++) {
    const auto &p = pairs[i];
    if (!counted[i])
      continue;
    loudest_out = std::max(loudest_out, p.second);
    if (p.first < 0.03 * loudest_src)
      continue;
    m.active++;
    if (p.second < 0.1 * m.gain * p.first)
      m.dropouts++;
  }
  m.loudest_db = 20 * std::log10(std::max(loudest_out, 1e-9) / loudest_src);
  return m;
}

} // namespace testsig
