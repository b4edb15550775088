/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "testsig.h"

#include <algorithm>
#include <cmath>

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

} // namespace testsig
