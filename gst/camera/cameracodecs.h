/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Which GStreamer elements carry a camera's RTP streams, as plans made from what the camera's SDP
 * says (media, encoding name, clock rate, channels): for each stream the camera sends, the
 * depayloader and decoder; for its ONVIF back channel (`a=sendonly`), the raw format to resample
 * to, the encoder and the payloader. Pure C++, unit-tested; rtspcamera makes the elements.
 */
#pragma once

#include <string>
#include <vector>

namespace costream {

struct RtpStreamInfo {
  std::string media;         /* "audio", "video" */
  std::string encoding_name; /* as in the SDP's rtpmap, any case: "PCMA", "H264", "opus" */
  int clock_rate = 0;
  int channels = 0; /* the rtpmap's encoding parameters; 0 when absent */
  int payload = -1;
};

/* A chain of element factories with the properties to set, from first to last. */
struct ElementSpec {
  std::string factory;
  std::vector<std::pair<std::string, std::string>>
      properties; /* set with gst_util_set_object_arg */
};

/* What the element's audio pad carries: the camera's audio decoded, or Opus (the camera's own
 * when it sends Opus, else encoded from its audio). */
enum class AudioOutput { Raw, Opus };

struct ReceivePlan {
  bool supported = false;
  std::string codec;  /* short name shown in stats: "H264", "PCMA", "AAC", ... */
  std::string output; /* audio: "raw", "opus-passthrough" or "opus-encoded"; video: "h264" */
  std::vector<ElementSpec> chain;
  std::string output_caps; /* a capsfilter after the chain; empty for none */
};

/* The camera's video (H.264 only: depayloaded, parsed to byte-stream access units with SPS/PPS
 * before every key frame) or audio (decoded to raw; or, for AudioOutput::Opus, Opus: depayloaded
 * only when the camera sends Opus, else decoded and encoded with opusenc, 48 kHz mono, 20 ms).
 * Anything else is not supported. */
ReceivePlan plan_receive(const RtpStreamInfo &s, AudioOutput audio = AudioOutput::Raw);

/* The caps the audio pad will have, announced before the camera is reached. */
const char *audio_output_caps(AudioOutput audio);

struct BackchannelPlan {
  bool supported = false;
  std::string codec;
  int rate = 0;                   /* raw audio is resampled to this */
  int channels = 1;               /* and mixed to this many channels */
  std::vector<ElementSpec> chain; /* encoder and payloader */
};

/* PCMA and PCMU (any clock rate the camera asks, 8 kHz in practice), Opus, AAC (MPEG4-GENERIC,
 * AAC-hbr) and L16. */
BackchannelPlan plan_backchannel(const RtpStreamInfo &s);

} // namespace costream
