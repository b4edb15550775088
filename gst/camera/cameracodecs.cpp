/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "cameracodecs.h"

#include <algorithm>
#include <cctype>

namespace costream {

namespace {

std::string upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return s;
}

} // namespace

ReceivePlan plan_receive(const RtpStreamInfo &s, AudioOutput audio) {
  ReceivePlan p;
  const std::string enc = upper(s.encoding_name);
  if (s.media == "video") {
    if (enc == "H264") {
      p.supported = true;
      p.codec = "H264";
      p.output = "h264";
      p.chain = {{"rtph264depay", {}}, {"h264parse", {{"config-interval", "-1"}}}};
      p.output_caps = "video/x-h264, stream-format=(string)byte-stream, alignment=(string)au";
    } else {
      p.codec = enc;
    }
    return p;
  }
  if (s.media != "audio") {
    p.codec = enc;
    return p;
  }
  p.supported = true;
  if (enc == "PCMA") {
    p.codec = "PCMA";
    p.chain = {{"rtppcmadepay", {}}, {"alawdec", {}}};
  } else if (enc == "PCMU") {
    p.codec = "PCMU";
    p.chain = {{"rtppcmudepay", {}}, {"mulawdec", {}}};
  } else if (enc == "OPUS") {
    p.codec = "OPUS";
    p.chain = {{"rtpopusdepay", {}}, {"opusdec", {}}};
  } else if (enc == "MPEG4-GENERIC") {
    p.codec = "AAC";
    p.chain = {{"rtpmp4gdepay", {}}, {"avdec_aac", {}}};
  } else if (enc == "L16") {
    p.codec = "L16";
    p.chain = {{"rtpL16depay", {}}, {"audioconvert", {}}};
  } else {
    p.supported = false;
    p.codec = enc;
    return p;
  }
  p.output = "raw";
  if (audio == AudioOutput::Opus) {
    if (p.codec == "OPUS") {
      p.chain = {{"rtpopusdepay", {}}};
      p.output = "opus-passthrough";
    } else {
      /* Always 48 kHz mono, the caps announced before the camera answers (audio_output_caps):
       * at the camera's 8 kHz the caps would change under the sinks once it answers, and
       * audioresample 1.22 reading past its buffer when its input rate changes was seen (ASan)
       * behind an opusdec that followed. */
      p.chain.push_back({"audioconvert", {}});
      p.chain.push_back({"audioresample", {}});
      p.chain.push_back({"capsfilter", {{"caps", "audio/x-raw,rate=48000,channels=1"}}});
      p.chain.push_back({"opusenc", {{"frame-size", "20"}}});
      p.output = "opus-encoded";
    }
  }
  return p;
}

const char *audio_output_caps(AudioOutput audio) {
  return audio == AudioOutput::Opus
             ? "audio/x-opus, channel-mapping-family=(int)0, rate=(int)48000, channels=(int)1"
             : "audio/x-raw, format=(string)S16LE, layout=(string)interleaved, rate=(int)8000, "
               "channels=(int)1";
}

BackchannelPlan plan_backchannel(const RtpStreamInfo &s) {
  BackchannelPlan p;
  const std::string enc = upper(s.encoding_name);
  p.codec = enc;
  if (s.media != "audio")
    return p;
  const std::string pt = std::to_string(s.payload >= 0 && s.payload <= 127 ? s.payload : 96);
  p.rate = s.clock_rate > 0 ? s.clock_rate : 8000;
  p.channels = s.channels == 2 ? 2 : 1;
  if (enc == "PCMA" || enc == "PCMU") {
    p.supported = true;
    p.channels = 1;
    p.chain = {{enc == "PCMA" ? "alawenc" : "mulawenc", {}},
               {enc == "PCMA" ? "rtppcmapay" : "rtppcmupay", {{"pt", pt}}}};
  } else if (enc == "OPUS") {
    /* Opus's RTP clock is always 48 kHz and its rtpmap always says 2 channels; a camera's
     * speaker is mono. */
    p.supported = true;
    p.rate = 48000;
    p.channels = 1;
    p.chain = {{"opusenc", {{"bitrate", "32000"}, {"frame-size", "20"}}},
               {"rtpopuspay", {{"pt", pt}}}};
  } else if (enc == "MPEG4-GENERIC") {
    p.supported = true;
    p.codec = "AAC";
    p.chain = {{"avenc_aac", {}}, {"rtpmp4gpay", {{"pt", pt}}}};
  } else if (enc == "L16") {
    p.supported = true;
    p.chain = {{"rtpL16pay", {{"pt", pt}}}};
  }
  return p;
}

} // namespace costream
