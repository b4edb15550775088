/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Signal analysis for content checks: tone generation, amplitude at a frequency, and the purity
 * of a tone (how far a signal is from one clean sinusoid, window by window).
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace testsig {

std::vector<double> tone(double freq, double rate, size_t n, double amplitude, double phase = 0.0);
/* Amplitude of the component at `freq` (least-squares fit of sin/cos, DC removed). */
double amplitude_at(const double *x, size_t n, double freq, double rate);
/* Best-fitting frequency within [f_lo, f_hi]. */
double estimate_frequency(const double *x, size_t n, double rate, double f_lo, double f_hi);
/* Amplitude of the strongest component within `freq` +-`tolerance` (relative): a tone that went
 * through a live mixer, which may retime a talker by resampling (up to 2% while it absorbs a
 * timing step), is still found. */
double amplitude_near(const double *x, size_t n, double freq, double rate,
                      double tolerance = 0.025);
/* SNR in dB of the best single-sinusoid fit near `freq` (+-2%); residual = everything else. */
double tone_snr_db(const double *x, size_t n, double freq, double rate);

struct Purity {
  double worst_snr_db; /* over windows */
  double median_snr_db;
  size_t worst_window;
};
/* Windowed tone_snr_db over the signal: a click or a gap shows up as one bad window. */
Purity tone_purity(const std::vector<double> &x, double freq, double rate, size_t window);

/* Fraction of the `window`-sample windows of `x` in which the tone at `freq` (+-2.5%) is weaker
 * than `min_amp`: a lost packet left as silence, or concealed badly, is such a window. */
double dropout_fraction(const std::vector<double> &x, double freq, double rate, size_t window,
                        double min_amp);

/* Largest absolute sample-to-sample step: clicks and dropouts show as jumps. */
double max_step(const std::vector<double> &x);

} // namespace testsig
