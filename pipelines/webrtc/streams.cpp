/* costream-webrtc: the streams
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * One Stream per producer, all in one pipeline, element names suffixed with the stream's index:
 *   test sources:  videotestsrc ! H.264 ! rtph264pay ! tee vtK,  audiotestsrc ! opus ! tee atK
 *   RTMP:          rtmpbridge srcK (H.264 kept, AAC to Opus) ! rtp payloaders ! tees
 *   RTSP camera:   rtspcamera srcK: video (H.264, passed through) ! rtph264pay ! tee vtK,
 *                  audio (audio-format=opus: the camera's Opus passed through, other codecs
 *                  encoded by rtspcamera) ! rtpopuspay ! tee atK,
 *                  backchannelmixer bcK ! srcK.backchannel (one RTSP session however many viewers)
 * The test and RTMP producers' back channel (their mixer's output) goes to --record or --rtp-out.
 */
#include "server.h"

#include <cstring>

namespace cw {

namespace {

GstPadProbeReturn count_probe(GstPad *, GstPadProbeInfo *info, gpointer data) {
  auto *c = static_cast<Counter *>(data);
  if (info->type & GST_PAD_PROBE_TYPE_BUFFER) {
    c->packets++;
    c->bytes += gst_buffer_get_size(GST_PAD_PROBE_INFO_BUFFER(info));
  } else if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST) {
    GstBufferList *list = GST_PAD_PROBE_INFO_BUFFER_LIST(info);
    const guint n = gst_buffer_list_length(list);
    c->packets += n;
    for (guint i = 0; i < n; i++)
      c->bytes += gst_buffer_get_size(gst_buffer_list_get(list, i));
  }
  return GST_PAD_PROBE_OK;
}

std::string h264_encoder() {
  if (GstElementFactory *f = gst_element_factory_find("x264enc")) {
    gst_object_unref(f);
    return "x264enc tune=zerolatency speed-preset=veryfast bitrate=1000 key-int-max=30 bframes=0";
  }
  if (GstElementFactory *f = gst_element_factory_find("openh264enc")) {
    gst_object_unref(f);
    return "openh264enc bitrate=1000000 complexity=low gop-size=30 rate-control=bitrate";
  }
  return "";
}

const char *const kVideoPay = "rtph264pay pt=96 config-interval=-1 aggregate-mode=zero-latency";

/* rtmpbridge's pads, payloaded into the stream's tees as they appear */
void on_bridge_pad(GstElement *, GstPad *pad, gpointer data) {
  auto *s = static_cast<Stream *>(data);
  const bool audio = g_str_equal(GST_PAD_NAME(pad), "audio");
  GstElement *bin = gst_parse_bin_from_description(
      audio ? "queue ! rtpopuspay pt=97" : (std::string("queue ! ") + kVideoPay).c_str(), TRUE,
      nullptr);
  gst_bin_add(GST_BIN(app.pipeline), bin);
  GstPad *in = gst_element_get_static_pad(bin, "sink");
  GstPad *out = gst_element_get_static_pad(bin, "src");
  GstPad *tee = gst_element_get_static_pad(audio ? s->atee : s->vtee, "sink");
  gst_pad_link(out, tee);
  gst_element_sync_state_with_parent(bin);
  gst_pad_link(pad, in);
  gst_object_unref(in);
  gst_object_unref(out);
  gst_object_unref(tee);
  say("publisher's %s is on the air (stream %s)", audio ? "audio" : "video", s->name.c_str());
}

bool valid_name(const std::string &n) {
  if (n.empty() || n.size() > 64)
    return false;
  for (char c : n)
    if (!g_ascii_isalnum(c) && c != '-' && c != '_')
      return false;
  return true;
}

/* The back channel of a test or RTMP stream: the mixer's output to a file or RTP. With several
 * such streams, each has a file of its own: --record's name with "-NAME" before its extension. */
bool recorder(const std::string &k, const std::string &name, bool several, std::string *desc,
              std::string *where, std::string *error) {
  *desc = "backchannelmixer name=bc" + k + " force-live=true ! audioconvert ! audioresample ! ";
  if (!app.opt.rtp_out.empty()) {
    const size_t colon = app.opt.rtp_out.rfind(':');
    if (colon == std::string::npos) {
      *error = "--rtp-out wants HOST:PORT";
      return false;
    }
    if (several) {
      *error = "--rtp-out takes one stream's back channel; there are several RTMP streams";
      return false;
    }
    *desc += "opusenc ! rtpopuspay pt=97 ! udpsink name=rec" + k +
             " host=" + app.opt.rtp_out.substr(0, colon) +
             " port=" + app.opt.rtp_out.substr(colon + 1) + " sync=false async=false ";
    *where = app.opt.rtp_out;
  } else {
    std::string file = app.opt.record;
    if (several) {
      const size_t slash = file.rfind('/');
      const size_t dot = file.rfind('.');
      const size_t at = dot != std::string::npos && (slash == std::string::npos || dot > slash)
                            ? dot
                            : file.size();
      file.insert(at, "-" + name);
    }
    gchar *dir = g_path_get_dirname(file.c_str());
    g_mkdir_with_parents(dir, 0755);
    g_free(dir);
    *desc += "audio/x-raw,format=S16LE,rate=48000,channels=1 ! wavenc ! filesink name=rec" + k +
             " async=false location=\"" + file + "\" ";
    *where = file;
  }
  return true;
}

} // namespace

void Counter::attach(GstPad *pad) {
  gst_pad_add_probe(
      pad, static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST),
      count_probe, this, nullptr);
}

bool build_streams(std::string *error) {
  std::string desc;
  auto add = [&](const std::string &name, Stream::Kind kind) -> Stream * {
    auto s = std::make_unique<Stream>();
    s->name = name;
    s->kind = kind;
    app.streams.push_back(std::move(s));
    return app.streams.back().get();
  };
  for (size_t i = 0; i < app.opt.cameras.size(); i++) {
    const CameraArg &c = app.opt.cameras[i];
    if (!valid_name(c.name)) {
      *error = "--camera: a stream name is letters, digits, '-' and '_' (at most 64)";
      return false;
    }
    if (find_stream(c.name)) {
      *error = "--camera: two streams are named " + c.name;
      return false;
    }
    Stream *s = add(c.name, Stream::Kind::Camera);
    const std::string k = std::to_string(app.streams.size() - 1);
    /* The location is set on the element below, not written here: it may hold credentials. */
    desc += "rtspcamera name=src" + k + " audio-format=opus src" + k +
            ".video ! queue ! h264parse ! " + kVideoPay + " ! tee name=vt" + k +
            " allow-not-linked=true src" + k + ".audio ! queue ! rtpopuspay pt=97 ! tee name=at" +
            k + " allow-not-linked=true backchannelmixer name=bc" + k + " force-live=true ! src" +
            k + ".backchannel ";
    s->back_channel = "the camera's back channel";
  }
  if (app.opt.rtmp_port) {
    /* --stream-key KEY (or nothing: any key) is the stream "live"; --rtmp-stream NAME=KEY more */
    std::vector<CameraArg> rtmp = app.opt.rtmp_streams;
    if (rtmp.empty() || !app.opt.stream_key.empty())
      rtmp.insert(rtmp.begin(), CameraArg{"live", app.opt.stream_key});
    for (const CameraArg &r : rtmp) {
      if (!valid_name(r.name)) {
        *error = "--rtmp-stream: a stream name is letters, digits, '-' and '_' (at most 64)";
        return false;
      }
      if (find_stream(r.name)) {
        *error = "two streams are named " + r.name;
        return false;
      }
      Stream *s = add(r.name, Stream::Kind::Rtmp);
      s->rtmp_key = r.url;
      const std::string k = std::to_string(app.streams.size() - 1);
      /* The key is set on the element below, not written here. */
      desc += "rtmpbridge name=src" + k + " port=" + std::to_string(app.opt.rtmp_port) +
              " tee name=vt" + k + " allow-not-linked=true tee name=at" + k +
              " allow-not-linked=true ";
      std::string back;
      if (!recorder(k, r.name, rtmp.size() > 1, &back, &s->back_channel, error))
        return false;
      desc += back;
    }
  } else if (app.opt.cameras.empty()) {
    Stream *s = add("test", Stream::Kind::Test);
    const std::string k = std::to_string(app.streams.size() - 1);
    const std::string enc = h264_encoder();
    if (enc.empty()) {
      *error = "no H.264 encoder (install gstreamer1.0-plugins-bad or -ugly)";
      return false;
    }
    desc += "videotestsrc is-live=true pattern=ball ! "
            "video/x-raw,width=640,height=360,framerate=30/1 ! videoconvert ! queue ! " +
            enc + " ! h264parse ! " + kVideoPay + " ! tee name=vt" + k +
            " allow-not-linked=true "
            "audiotestsrc is-live=true wave=sine freq=880 volume=0.1 ! audioconvert ! "
            "audioresample ! opusenc ! rtpopuspay pt=97 ! tee name=at" +
            k + " allow-not-linked=true ";
    std::string back;
    if (!recorder(k, s->name, false, &back, &s->back_channel, error))
      return false;
    desc += back;
    s->state = "streaming";
  }
  GError *err = nullptr;
  app.pipeline = gst_parse_launch(desc.c_str(), &err);
  if (!app.pipeline || err) {
    *error = err ? err->message : "cannot build the pipeline";
    g_clear_error(&err);
    return false;
  }
  size_t camera = 0;
  for (size_t i = 0; i < app.streams.size(); i++) {
    Stream *s = app.streams[i].get();
    const std::string k = std::to_string(i);
    GstBin *bin = GST_BIN(app.pipeline);
    s->vtee = gst_bin_get_by_name(bin, ("vt" + k).c_str());
    s->atee = gst_bin_get_by_name(bin, ("at" + k).c_str());
    s->mixer = gst_bin_get_by_name(bin, ("bc" + k).c_str());
    s->producer = gst_bin_get_by_name(bin, ("src" + k).c_str());
    for (auto [tee, counter] :
         {std::pair<GstElement *, Counter *>{s->vtee, &s->video_in}, {s->atee, &s->audio_in}}) {
      GstPad *pad = gst_element_get_static_pad(tee, "sink");
      counter->attach(pad);
      gst_object_unref(pad);
    }
    if (s->kind == Stream::Kind::Camera)
      g_object_set(s->producer, "location", app.opt.cameras[camera++].url.c_str(), nullptr);
    if (s->kind == Stream::Kind::Rtmp) {
      if (!s->rtmp_key.empty())
        g_object_set(s->producer, "stream-key", s->rtmp_key.c_str(), nullptr);
      if (!app.opt.auth_url.empty()) /* the operator's service decides publishes too */
        g_object_set(s->producer, "publish-auth-url", app.opt.auth_url.c_str(), nullptr);
      g_signal_connect(s->producer, "pad-added", G_CALLBACK(on_bridge_pad), s);
    }
  }
  return true;
}

Stream *find_stream(const std::string &name) {
  for (auto &s : app.streams)
    if (name.empty() || s->name == name)
      return s.get();
  return nullptr;
}

Stream *stream_of(GstObject *element) {
  for (auto &s : app.streams)
    for (GstElement *e : {s->producer, s->mixer})
      if (e && (element == GST_OBJECT(e) || gst_object_has_as_ancestor(element, GST_OBJECT(e))))
        return s.get();
  return nullptr;
}

bool stream_message(GstMessage *msg) {
  const GstStructure *st = gst_message_get_structure(msg);
  Stream *s = st ? stream_of(GST_MESSAGE_SRC(msg)) : nullptr;
  if (!s)
    return false;
  const char *name = gst_structure_get_name(st);
  if (g_str_equal(name, "backchannelmixer-talker")) {
    gboolean active = FALSE;
    double level = -127;
    gst_structure_get_boolean(st, "active", &active);
    gst_structure_get_double(st, "level", &level);
    const gchar *pad = gst_structure_get_string(st, "pad-name");
    const guint id = pad && g_str_has_prefix(pad, "sink_")
                         ? static_cast<guint>(g_ascii_strtoull(pad + 5, nullptr, 10))
                         : 0;
    say("talker %u %s %.1f dBov", id, active ? "active" : "quiet", level);
    gchar *line = g_strdup_printf("talker\n%u %d %.1f", id, active ? 1 : 0, level);
    broadcast(s, line);
    g_free(line);
    auto it = s->talkers.find(id);
    const bool was = it != s->talkers.end() && it->second;
    s->talkers[id] = active;
    if (was != static_cast<bool>(active)) {
      gchar *fields = g_strdup_printf("\"viewer\": %u, \"level\": %.1f", id, level);
      event(active ? "talker.started" : "talker.stopped", s, fields);
      g_free(fields);
    }
  } else if (g_str_equal(name, "rtmp-publish-start")) {
    say("rtmp-publish-start (stream %s)", s->name.c_str());
    s->state = "streaming";
    const gchar *remote = gst_structure_get_string(st, "remote-address");
    event("publish.start", s, "\"remote_address\": " + json_string(remote ? remote : ""));
  } else if (g_str_equal(name, "rtmp-publish-stop")) {
    say("rtmp-publish-stop (stream %s)", s->name.c_str());
    s->state = "waiting";
    guint64 bytes = 0;
    const gchar *reason = gst_structure_get_string(st, "reason");
    gst_structure_get_uint64(st, "bytes", &bytes);
    event("publish.stop", s,
          "\"reason\": " + json_string(reason ? reason : "") +
              ", \"bytes\": " + std::to_string(bytes));
  } else if (g_str_equal(name, "rtspcamera-connected")) {
    s->state = "streaming";
    guint64 outage = 0;
    gst_structure_get_uint64(st, "outage", &outage);
    const gchar *vc = gst_structure_get_string(st, "video-codec");
    const gchar *ac = gst_structure_get_string(st, "audio-codec");
    const gchar *ao = gst_structure_get_string(st, "audio-output");
    const gchar *bc = gst_structure_get_string(st, "backchannel-codec");
    say("camera %s connected (video %s, audio %s: %s, back channel %s; outage %" G_GUINT64_FORMAT
        " ms)",
        s->name.c_str(), vc && *vc ? vc : "none", ac && *ac ? ac : "none", ao && *ao ? ao : "none",
        bc && *bc ? bc : "none", outage / GST_MSECOND);
    event("camera.connected", s,
          "\"video_codec\": " + json_string(vc ? vc : "") + ", \"audio_codec\": " +
              json_string(ac ? ac : "") + ", \"audio_output\": " + json_string(ao ? ao : "") +
              ", \"backchannel_codec\": " + json_string(bc ? bc : "") +
              ", \"outage_ms\": " + std::to_string(outage / GST_MSECOND));
  } else if (g_str_equal(name, "rtspcamera-lost")) {
    s->state = "lost";
    const gchar *reason = gst_structure_get_string(st, "reason");
    guint64 retry = 0;
    gst_structure_get_uint64(st, "retry-in", &retry);
    say("camera %s lost: %s", s->name.c_str(), reason ? reason : "?");
    event("camera.lost", s,
          "\"reason\": " + json_string(reason ? reason : "") +
              ", \"retry_in_ms\": " + std::to_string(retry / GST_MSECOND));
  } else {
    return false;
  }
  return true;
}

void free_streams() {
  for (auto &s : app.streams)
    for (GstElement *e : {s->vtee, s->atee, s->mixer, s->producer})
      if (e)
        gst_object_unref(e);
  app.streams.clear();
}

} // namespace cw
