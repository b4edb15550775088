/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * costream-test-camera: a stand-in ONVIF IP camera made of GStreamer's own RTSP server
 * (GstRTSPOnvifServer + GstRTSPOnvifMediaFactory), the camera implementation the rtspcamera tests
 * and the WebRTC server tests talk to. Nobody here wrote its RTSP or its back channel.
 *
 *   costream-test-camera [--port N] [--path /cam] [--audio pcma|pcmu|opus|none] [--tone HZ]
 *                        [--backchannel pcma|pcmu|opus|none] [--record FILE]
 *                        [--user U --password P]
 *
 * Streams: H.264 video (320x240, 25 fps, openh264enc, a key frame every 25 frames), the camera's
 * own audio (a live tone, G.711 at 8 kHz, or Opus at 48 kHz mono in 40 ms packets with `--audio
 * opus`) and, unless
 * `--backchannel none`, an ONVIF back channel
 * (`a=sendonly`) whose audio is decoded and appended to FILE as raw S16LE mono (8 kHz for G.711,
 * 48 kHz for Opus). `--port 0` picks a free port. Once serving it prints one line
 * `ready rtsp://127.0.0.1:PORT/PATH` on standard output. SIGTERM/SIGINT stop it.
 */
#include <gst/gst.h>
/* The ONVIF headers of gst-rtsp-server 1.22 lack G_BEGIN_DECLS. */
extern "C" {
#include <gst/rtsp-server/rtsp-onvif-server.h>
}
#include <glib-unix.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

struct Options {
  int port = 0;
  std::string path = "/cam";
  std::string audio = "pcma";
  int tone = 1000;
  std::string backchannel = "pcma";
  std::string record = "/dev/null";
  std::string user, password;
};

bool parse(int argc, char **argv, Options &o) {
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto value = [&](std::string &v) {
      if (i + 1 >= argc)
        return false;
      v = argv[++i];
      return true;
    };
    std::string v;
    if (a == "--port" && value(v))
      o.port = std::atoi(v.c_str());
    else if (a == "--path" && value(o.path))
      continue;
    else if (a == "--audio" && value(o.audio))
      continue;
    else if (a == "--tone" && value(v))
      o.tone = std::atoi(v.c_str());
    else if (a == "--backchannel" && value(o.backchannel))
      continue;
    else if (a == "--record" && value(o.record))
      continue;
    else if (a == "--user" && value(o.user))
      continue;
    else if (a == "--password" && value(o.password))
      continue;
    else
      return false;
  }
  return true;
}

std::string audio_branch(const Options &o) {
  std::string src =
      "audiotestsrc is-live=true wave=sine volume=0.3 freq=" + std::to_string(o.tone) +
      " ! audio/x-raw,rate=" + (o.audio == "opus" ? "48000" : "8000") + ",channels=1 ! ";
  if (o.audio == "opus")
    /* 40 ms packets, which rtspcamera's own encoder never makes: a test tells passthrough from
     * transcoding by the packets' durations */
    return src + "opusenc frame-size=40 ! rtpopuspay name=pay1 pt=97";
  if (o.audio == "pcma")
    return src + "alawenc ! rtppcmapay name=pay1 pt=8";
  if (o.audio == "pcmu")
    return src + "mulawenc ! rtppcmupay name=pay1 pt=0";
  return "";
}

std::string backchannel_launch(const Options &o) {
  std::string sink = " ! filesink location=\"" + o.record +
                     "\" append=true sync=false async=false buffer-mode=unbuffered";
  if (o.backchannel == "pcma")
    return "( capsfilter caps=\"application/x-rtp, media=audio, payload=8, clock-rate=8000, "
           "encoding-name=PCMA\" name=depay_backchannel ! rtppcmadepay ! alawdec" +
           sink + " )";
  if (o.backchannel == "pcmu")
    return "( capsfilter caps=\"application/x-rtp, media=audio, payload=0, clock-rate=8000, "
           "encoding-name=PCMU\" name=depay_backchannel ! rtppcmudepay ! mulawdec" +
           sink + " )";
  if (o.backchannel == "opus")
    return "( capsfilter caps=\"application/x-rtp, media=audio, payload=111, clock-rate=48000, "
           "encoding-name=OPUS\" name=depay_backchannel ! rtpopusdepay ! opusdec ! "
           "audioconvert ! audio/x-raw,format=S16LE,channels=1,rate=48000" +
           sink + " )";
  return "";
}

gboolean on_signal(gpointer loop) {
  g_main_loop_quit(static_cast<GMainLoop *>(loop));
  return G_SOURCE_REMOVE;
}

} // namespace

int main(int argc, char **argv) {
  gst_init(&argc, &argv);
  Options o;
  if (!parse(argc, argv, o) ||
      (o.audio != "pcma" && o.audio != "pcmu" && o.audio != "opus" && o.audio != "none") ||
      (o.backchannel != "pcma" && o.backchannel != "pcmu" && o.backchannel != "opus" &&
       o.backchannel != "none")) {
    std::fprintf(stderr, "usage: costream-test-camera [--port N] [--path /cam] [--audio "
                         "pcma|pcmu|opus|none] [--tone HZ] [--backchannel pcma|pcmu|opus|none] "
                         "[--record FILE] [--user U --password P]\n");
    return 2;
  }

  GMainLoop *loop = g_main_loop_new(nullptr, FALSE);
  GstRTSPServer *server = gst_rtsp_onvif_server_new();
  gst_rtsp_server_set_address(server, "127.0.0.1");
  gst_rtsp_server_set_service(server, std::to_string(o.port).c_str());

  GstRTSPMediaFactory *factory = gst_rtsp_onvif_media_factory_new();
  std::string launch = "( videotestsrc is-live=true pattern=ball ! "
                       "video/x-raw,width=320,height=240,framerate=25/1 ! "
                       "openh264enc gop-size=25 complexity=low "
                       "bitrate=300000 ! rtph264pay name=pay0 pt=96 config-interval=-1 " +
                       audio_branch(o) + " )";
  gst_rtsp_media_factory_set_launch(factory, launch.c_str());
  if (o.backchannel != "none")
    gst_rtsp_onvif_media_factory_set_backchannel_launch(GST_RTSP_ONVIF_MEDIA_FACTORY(factory),
                                                        backchannel_launch(o).c_str());
  gst_rtsp_media_factory_set_shared(factory, FALSE);
  gst_rtsp_media_factory_set_media_gtype(factory, GST_TYPE_RTSP_ONVIF_MEDIA);

  if (!o.user.empty()) {
    GstRTSPAuth *auth = gst_rtsp_auth_new();
    GstRTSPToken *token =
        gst_rtsp_token_new(GST_RTSP_TOKEN_MEDIA_FACTORY_ROLE, G_TYPE_STRING, "viewer", nullptr);
    gchar *basic = gst_rtsp_auth_make_basic(o.user.c_str(), o.password.c_str());
    gst_rtsp_auth_add_basic(auth, basic, token);
    g_free(basic);
    gst_rtsp_token_unref(token);
    gst_rtsp_server_set_auth(server, auth);
    g_object_unref(auth);
    gst_rtsp_media_factory_add_role(factory, "viewer", GST_RTSP_PERM_MEDIA_FACTORY_ACCESS,
                                    G_TYPE_BOOLEAN, TRUE, GST_RTSP_PERM_MEDIA_FACTORY_CONSTRUCT,
                                    G_TYPE_BOOLEAN, TRUE, nullptr);
  }

  GstRTSPMountPoints *mounts = gst_rtsp_server_get_mount_points(server);
  gst_rtsp_mount_points_add_factory(mounts, o.path.c_str(), factory);
  g_object_unref(mounts);

  if (gst_rtsp_server_attach(server, nullptr) == 0) {
    std::fprintf(stderr, "costream-test-camera: cannot listen on 127.0.0.1:%d\n", o.port);
    return 1;
  }
  std::printf("ready rtsp://127.0.0.1:%d%s\n", gst_rtsp_server_get_bound_port(server),
              o.path.c_str());
  std::fflush(stdout);

  g_unix_signal_add(SIGTERM, on_signal, loop);
  g_unix_signal_add(SIGINT, on_signal, loop);
  g_main_loop_run(loop);
  g_object_unref(server);
  g_main_loop_unref(loop);
  return 0;
}
