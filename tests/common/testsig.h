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

/* Voiced, speech-like sound: glottal pulses (f0 gliding around 120 Hz) through two moving
 * formant resonances, in syllables of 100-300 ms between pauses of 30-250 ms (drawn from the
 * seed); peak at `peak`. Opus codes it as speech (SILK), so its loss concealment and in-band FEC
 * act as they do on a voice, which a steady tone does not show. Deterministic for a seed. */
std::vector<double> speechlike(double rate, size_t n, double peak = 0.5, unsigned seed = 1);

/* A received copy `out` of `src` compared window by window, after finding the delay between
 * them (1 ms steps, up to `max_lag` samples, by their envelopes, followed as it drifts) and the
 * level (median ratio over the windows where the source talks). Windows of src before `from`
 * help find the delay but are not counted (a warm-up). */
struct EnvelopeMatch {
  long lag = 0;          /* out[i + lag] carries src[i] (over the whole; it may drift) */
  double gain = 0;       /* out level / src level */
  size_t active = 0;     /* windows where the source talks: >= 3 % of its loudest window */
  size_t dropouts = 0;   /* active windows 20 dB or more under src * gain */
  double loudest_db = 0; /* loudest out window over the loudest src window, dB */
  double fraction() const { return active ? static_cast<double>(dropouts) / active : 0.0; }
};
EnvelopeMatch match_envelopes(const std::vector<double> &src, const std::vector<double> &out,
                              double rate, size_t window, size_t max_lag, size_t from = 0);

/* Largest absolute sample-to-sample step: clicks and dropouts show as jumps. */
double max_step(const std::vector<double> &x);

} // namespace testsig
