/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * What the browser tests of the talk-back server (pipelines/webrtc) share: a network namespace
 * of their own, plain HTTP requests, the server's log read as viewers' getStats() summaries, the
 * server and headless Chromium as children.
 */
#pragma once

#include "helpers.h"
#include "process.h"

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace testgst {

/* A network namespace with only `lo`, up. False when not permitted (not root). */
bool enter_private_network();

/* An HTTP request to 127.0.0.1:port; the response, or "" when nobody answered. */
std::string http(guint16 port, const std::string &method, const std::string &target);

/* The page's getStats() summaries per viewer, in the order the server printed them. */
struct ViewerStats {
  struct Sample {
    long audio = 0, video = 0, frames = 0, sent = 0, tone = 0, shown = 0;
    long audio_samples = 0; /* decoded audio samples played out (48 kHz), concealment included */
  };
  std::vector<Sample> samples;
  bool talks = false, heard = false;
};

std::map<int, ViewerStats> parse_server_log(const std::string &log);

/* Received audio and decoded video, growing between two of its reports. */
bool receives(const ViewerStats &v);

/* A WAV file of a 440 Hz tone (tab 1's fake microphone); its path. */
std::string make_mic(const std::string &path);

/* The server, listening, media on 127.0.0.1 only. */
std::unique_ptr<Child> start_server(std::vector<std::string> args, const std::string &log);

/* Headless Chromium from Debian with fake media devices and no permission prompts, its first
 * tab on `url`; more tabs through its DevTools HTTP endpoint (headless takes one URL). */
struct Browser {
  std::string profile;
  guint16 devtools = 0;
  std::unique_ptr<Child> child;

  Browser(const std::string &dir, const std::string &mic, const std::string &url);
  /* a new tab on `url`; its DevTools id */
  std::string open_tab(std::string url);
  bool close_tab(const std::string &id);
};

/* A webhook receiver: HTTP/1.1 on 127.0.0.1 (a port of its own), every request's body kept,
 * answered 200. */
struct HookReceiver {
  int fd = -1;
  unsigned port = 0;
  std::atomic<bool> stop{false};
  std::mutex lock;
  std::vector<std::string> bodies;
  std::thread thread;
  /* the answer's status for a body (set before requests come; default: 200) */
  std::function<int(const std::string &body)> decide;

  HookReceiver();
  ~HookReceiver();
  /* the bodies received so far */
  std::vector<std::string> events();

private:
  void run();
  void serve(int c);
};

/* `"field": <number>` in a JSON text (first match at or after `from`), or -1. */
long json_number(const std::string &json, const std::string &field, size_t from = 0);

/* The events of `kind` (webhook bodies) that also contain `also`. */
size_t count_events(const std::vector<std::string> &events, const std::string &kind,
                    const std::string &also = "");

} // namespace testgst
