#!/usr/bin/env bash
# Regenerates the diagrams in docs/pipelines/ (see docs/pipelines.md): runs each pipelines/ script
# for a few seconds on 127.0.0.1 with GST_DEBUG_DUMP_DOT_DIR set, so gst-launch-1.0 writes a
# Graphviz dump at every state change, and renders the chosen dump with `dot -Tsvg`.
#   docs/pipelines/render.sh [PORT_BASE]
# Uses UDP and TCP ports PORT_BASE..PORT_BASE+49 (default 7700) and, for mixminus-hub-example
# (fixed ports), UDP 5100-5103, 5200-5203, 5300-5303, 5400-5403. Takes about 30 s.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
p=$top/pipelines
base=${1:-7700}
for tool in dot ffmpeg gst-launch-1.0; do
  command -v "$tool" >/dev/null || { echo "render.sh: $tool is missing" >&2; exit 1; }
done
# mixminus-hub-example calls gst-launch-1.0 directly: give it this tree's plugin (the other
# scripts find it themselves)
build=${BUILD_DIR:-build}
[ -f "$top/$build/gst/libgstcostream.so" ] &&
  export GST_PLUGIN_PATH="$top/$build/gst${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"

tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# dumps NAME CMD...: runs CMD in the background with its own dump directory $tmp/NAME
dumps() {
  local name=$1
  shift
  mkdir -p "$tmp/$name"
  GST_DEBUG_DUMP_DOT_DIR="$tmp/$name" "$@" >"$tmp/$name.log" 2>&1 &
  pids+=($!)
}

# render NAME STATE OUT [MATCH]: the last dump of state change STATE (PAUSED_PLAYING: the
# pipeline reached PLAYING; PLAYING_PAUSED: it is stopping) in $tmp/NAME, among the dumps that
# contain MATCH, to OUT.svg
render() {
  local name=$1 state=$2 out=$3 match=${4:-digraph}
  local f
  f=$(grep -l -- "$match" "$tmp/$name"/*"$state".dot | sort | tail -1 || true)
  [ -n "$f" ] || { echo "render.sh: no $state dump for $name" >&2; exit 1; }
  dot -Tsvg "$f" -o "$here/$out.svg"
  echo "$out.svg: $(stat -c %s "$here/$out.svg") bytes, from $name's $(basename "$f")"
}

# costream-send -> costream-recv (recording, so it runs without a display); the receiver listens
# first and sends its RTCP reports back (--peer)
dumps recv "$p/costream-recv" --peer 127.0.0.1 --out "$tmp/recv.mkv" --seconds 7 --port-base "$base"
sleep 1.5
dumps send "$p/costream-send" --peer 127.0.0.1 --seconds 4 --port-base "$base"

# obs-to-peer, with ffmpeg publishing a 4 s test file in real time, -> costream-recv
rtmp=$((base + 35))
ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc=size=320x240:rate=25 \
  -f lavfi -i "aevalsrc=0.25*sin(2*PI*440*t)|0.25*sin(2*PI*660*t):s=48000" -t 4 \
  -c:v libx264 -bf 0 -g 25 -c:a aac "$tmp/obs.flv"
dumps obsrecv "$p/costream-recv" --peer 127.0.0.1 --out "$tmp/obs.mkv" --seconds 10 \
  --port-base $((base + 20))
dumps obs "$p/obs-to-peer" --peer 127.0.0.1 --port $rtmp --key k --port-base $((base + 20)) \
  --seconds 9
sleep 2
ffmpeg -hide_banner -loglevel error -re -i "$tmp/obs.flv" -c copy -f flv "rtmp://127.0.0.1:$rtmp/live/k"
for pid in "${pids[@]}"; do
  wait "$pid" || { tail -n 5 "$tmp"/*.log >&2; echo "render.sh: a pipeline failed" >&2; exit 1; }
done
pids=()

# costream-room: the hub and its 3 peers share one dump directory
mkdir -p "$tmp/room"
GST_DEBUG_DUMP_DOT_DIR="$tmp/room" "$p/costream-room" --peers 3 --seconds 4 \
  --out-dir "$tmp/roomout" --port-base $((base + 40)) >"$tmp/room.log" 2>&1 ||
  { cat "$tmp/room.log" >&2; echo "render.sh: costream-room failed" >&2; exit 1; }

# mixminus-hub-example (runs until interrupted) with four tone peers
dumps hub timeout -s INT -k 5 7 "$p/mixminus-hub-example"
sleep 1
caps="application/x-rtp,media=audio,encoding-name=OPUS,payload=96,clock-rate=48000"
for i in 0 1 2 3; do
  timeout -s INT -k 3 5 gst-launch-1.0 audiotestsrc is-live=true freq=$((300 + 200 * i)) \
    volume=0.2 '!' audioconvert '!' opusenc '!' rtpopuspay pt=96 '!' \
    udpsink host=127.0.0.1 port=$((5100 + i)) sync=false async=false \
    udpsrc port=$((5300 + i)) caps="$caps" '!' rtpjitterbuffer '!' rtpopusdepay '!' opusdec '!' \
    fakesink >/dev/null 2>&1 &
  pids+=($!)
done
wait "${pids[@]}" || true # timeout's status: 124
pids=()
grep -q mixminus-pin "$tmp/hub.log" || echo "render.sh: mixminus-hub-example pinned nobody" >&2

# pipelines/webrtc: the server with two headless Chromium tabs talking back (the server dumps its
# pipeline each time a viewer's talk-back is linked: costream-webrtc-viewer-N.dot)
server="$top/$build/pipelines/webrtc/costream-webrtc"
if [ -x "$server" ] && command -v chromium >/dev/null; then
  mkdir -p "$tmp/webrtc"
  http=$((base + 45))
  dumps webrtc "$server" --port $http --ice-address 127.0.0.1 --record "$tmp/back.wav" --seconds 14
  sleep 1
  chromium --headless=new --no-sandbox --disable-gpu --no-first-run \
    --user-data-dir="$tmp/chromium" --remote-debugging-port=0 --use-fake-ui-for-media-stream \
    --use-fake-device-for-media-stream --autoplay-policy=no-user-gesture-required \
    --allow-loopback-in-peer-connection --disable-features=WebRtcHideLocalIpsWithMdns \
    "http://127.0.0.1:$http/?talk=1" >"$tmp/chromium.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do [ -s "$tmp/chromium/DevToolsActivePort" ] && break; sleep 0.2; done
  devtools=$(head -1 "$tmp/chromium/DevToolsActivePort")
  sleep 2
  # the second tab, through DevTools' HTTP endpoint (headless takes one URL)
  exec 3<>"/dev/tcp/127.0.0.1/$devtools"
  printf 'PUT /json/new?http://127.0.0.1:%s/%%3Ftalk=1%%26tone=660 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' \
    "$http" >&3
  timeout 5 cat <&3 >/dev/null || true # (it may keep the connection open)
  exec 3<&-
  wait "${pids[0]}" || true
  kill "${pids[@]}" 2>/dev/null || true
  pids=()
  if [ -f "$tmp/webrtc/costream-webrtc-viewer-2.dot" ]; then
    dot -Tsvg "$tmp/webrtc/costream-webrtc-viewer-2.dot" -o "$here/costream-webrtc.svg"
    echo "costream-webrtc.svg: $(stat -c %s "$here/costream-webrtc.svg") bytes"
  else
    echo "render.sh: costream-webrtc: no dump with two viewers" >&2
  fi
else
  echo "render.sh: costream-webrtc not built or no chromium: its diagram is not redone" >&2
fi

# The receivers' and bridge's PAUSED_PLAYING dumps come after the first packets (their sinks
# wait for data before PLAYING), so rtpbin's receive pads and rtmpbridge's pads are there. The
# hubs reach PLAYING before any peer sends: their receive chains are linked only in the dump
# written as they stop.
render send PAUSED_PLAYING costream-send
render recv PAUSED_PLAYING costream-recv
render obs PAUSED_PLAYING obs-to-peer
render room PLAYING_PAUSED costream-room-hub GstMixMinus
render room PAUSED_PLAYING costream-room-peer GstWavEnc
render hub PLAYING_PAUSED mixminus-hub-example
