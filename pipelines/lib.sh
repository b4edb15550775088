# Shared by the pipeline scripts: finds the costream plugin (installed, or this tree's build) and
# an H.264 encoder. Sourced, not run.
costream_top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# The uninstalled plugin from this tree's build when there is one; otherwise the installed one.
costream_use_plugin() {
  local build=${BUILD_DIR:-build}
  if [ -f "$costream_top/$build/gst/libgstcostream.so" ]; then
    export GST_PLUGIN_PATH="$costream_top/$build/gst${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
  fi
  if ! gst-inspect-1.0 costream >/dev/null 2>&1; then
    echo "$(basename "$0"): the costream plugin is not installed and not built here" \
      "(run ./tests/run or meson install first)" >&2
    exit 1
  fi
}

# An H.264 encoder element description for live video (x264enc if installed, else openh264enc).
costream_h264_encoder() {
  local kbps=$1
  if gst-inspect-1.0 x264enc >/dev/null 2>&1; then
    echo "x264enc tune=zerolatency speed-preset=veryfast bitrate=$kbps key-int-max=30 bframes=0"
  elif gst-inspect-1.0 openh264enc >/dev/null 2>&1; then
    echo "openh264enc bitrate=$((kbps * 1000)) complexity=low gop-size=30 rate-control=bitrate"
  else
    echo "$(basename "$0"): no H.264 encoder (install gstreamer1.0-plugins-bad or -ugly)" >&2
    exit 1
  fi
}

# Retransmission (RFC 4588, SSRC-multiplexed): the sender's rtprtxsend resends a lost packet when
# the receiver's NACK asks for it, H.264 (payload type 96) as 98 and Opus (97) as 99, each on an
# SSRC of its own; the receiver's rtprtxreceive, in front of rtpbin, turns it back into the
# original. Both ends name the SSRCs up front: a gst-launch line cannot use rtpbin's
# request-aux-sender/-receiver signals, and an rtprtxreceive in front of rtpbin never sees the
# requests it would otherwise learn them from.
costream_video_ssrc=1668248577 # 0x636f7301
costream_audio_ssrc=1668248579 # 0x636f7303
costream_rtx() { # costream_rtx video|audio: the rtprtxsend/rtprtxreceive maps for a stream
  local ssrc pt rtxpt
  if [ "$1" = video ]; then ssrc=$costream_video_ssrc pt=96 rtxpt=98
  else ssrc=$costream_audio_ssrc pt=97 rtxpt=99; fi
  echo "payload-type-map=application/x-rtp-pt-map,$pt=(uint)$rtxpt" \
    "ssrc-map=application/x-rtp-ssrc-map,$ssrc=(uint)$((ssrc + 1))"
}

# Whether costream_launch ends with EOS (-e). Recorders need it, so their files are finished.
# Senders set it to 0: they have nothing to finish, and with EOS a stop would wait for rtpbin to
# send EOS on its RTCP pads, which it does only after its BYE at the next RTCP interval: seconds,
# sometimes past the stop timeout.
costream_eos=1

# Runs a launch line for at most `seconds` (0: until interrupted).
costream_launch() {
  local seconds=$1
  shift
  local eos=()
  [ "$costream_eos" = 1 ] && eos=(-e)
  if [ "$seconds" -gt 0 ]; then
    local st=0
    # --foreground: the SIGINT goes to gst-launch-1.0 once. Without it timeout signals the child
    # and then its whole process group, and a gst-launch-1.0 that had already handled the first
    # SIGINT (its handler is gone then) died of the second one: the recording was cut before
    # its end (seen under load: an MKV without its last second, a WAV without its header).
    # --preserve-status: gst-launch-1.0's own status (0 after a clean stop, an error otherwise).
    timeout --foreground --preserve-status -s INT -k 10 "$seconds" \
      gst-launch-1.0 "${eos[@]}" "$@" || st=$?
    return "$st"
  fi
  exec gst-launch-1.0 "${eos[@]}" "$@"
}
