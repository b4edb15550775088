/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Soak: live talkers joining and leaving every 50 ms (8, 16 and 48 kHz live test sources, four
 * at a time) for COSTREAM_SOAK_SECONDS (default 120), for each mixer. The process's resident
 * memory at the end must be within 2 MB of what it was after 20 s. Memory is read after
 * malloc_trim(0), so that free memory glibc keeps in its arenas is not counted as growth (what is
 * still allocated is).
 */
#include "helpers.h"

#include <catch2/catch.hpp>

#include <malloc.h>
#include <unistd.h>

#include <cstdio>
#include <deque>
#include <string>

using namespace testgst;

namespace {

double rss_mb() {
  if (!g_getenv("COSTREAM_SOAK_NO_TRIM")) /* (to see what the allocator keeps, too) */
    malloc_trim(0);
  long pages = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  REQUIRE(f != nullptr);
  REQUIRE(fscanf(f, "%ld %ld", &pages, &resident) == 2);
  fclose(f);
  return resident * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

int soak_seconds() {
  const char *s = g_getenv("COSTREAM_SOAK_SECONDS");
  return s ? std::max(25, atoi(s)) : 120;
}

struct Talker {
  GstElement *bin = nullptr;
  GstPad *sinkpad = nullptr;  /* the mixer's */
  GstElement *feed = nullptr; /* mixminus: the return feed's sink */
};

/* Churns talkers on `mixer` in `pipeline` (PLAYING) for `seconds`; returns RSS after 20 s and at
 * the end. */
void churn(GstElement *pipeline, GstElement *mixer, bool feeds, int seconds, double *at20,
           double *at_end, int *joins) {
  std::deque<Talker> alive;
  const int rates[3] = {8000, 16000, 48000};
  const gint64 start = g_get_monotonic_time();
  *at20 = -1;
  *joins = 0;
  auto leave = [&](Talker &t) {
    gst_element_set_locked_state(t.bin, TRUE);
    gst_element_set_state(t.bin, GST_STATE_NULL);
    GstPad *src = gst_element_get_static_pad(t.bin, "src");
    gst_pad_unlink(src, t.sinkpad);
    gst_object_unref(src);
    gst_element_release_request_pad(mixer, t.sinkpad);
    gst_object_unref(t.sinkpad);
    gst_bin_remove(GST_BIN(pipeline), t.bin);
    if (t.feed) {
      gst_element_set_locked_state(t.feed, TRUE);
      gst_element_set_state(t.feed, GST_STATE_NULL);
      gst_bin_remove(GST_BIN(pipeline), t.feed);
    }
  };
  GstBus *bus = gst_element_get_bus(pipeline);
  for (int i = 0;; i++) {
    /* An application reads its bus (state changes, stream status, talker messages): so do we. */
    while (GstMessage *m = gst_bus_pop(bus)) {
      if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR) {
        GError *e = nullptr;
        gst_message_parse_error(m, &e, nullptr);
        FAIL_CHECK("error: " << e->message);
        g_clear_error(&e);
      }
      gst_message_unref(m);
    }
    const double elapsed = (g_get_monotonic_time() - start) / 1e6;
    if (*at20 < 0 && elapsed >= 20.0) {
      *at20 = rss_mb();
      printf("  after 20 s: %.1f MB (%d joins)\n", *at20, *joins);
    }
    if (elapsed >= seconds)
      break;
    const std::string desc =
        "audiotestsrc is-live=true samplesperbuffer=" + std::to_string(rates[i % 3] / 100) +
        " freq=" + std::to_string(300 + 10 * (i % 50)) +
        " volume=0.1 ! capsfilter "
        "caps=audio/x-raw,rate=" +
        std::to_string(rates[i % 3]);
    GError *err = nullptr;
    Talker t;
    t.bin = gst_parse_bin_from_description(desc.c_str(), TRUE, &err);
    REQUIRE(err == nullptr);
    gst_bin_add(GST_BIN(pipeline), t.bin);
    t.sinkpad = gst_element_request_pad_simple(mixer, "sink_%u");
    REQUIRE(t.sinkpad != nullptr);
    GstPad *src = gst_element_get_static_pad(t.bin, "src");
    REQUIRE(gst_pad_link(src, t.sinkpad) == GST_PAD_LINK_OK);
    gst_object_unref(src);
    if (feeds) {
      gchar *name = g_strdup_printf("src_%s", GST_PAD_NAME(t.sinkpad) + 5);
      t.feed = make("fakesink");
      g_object_set(t.feed, "sync", TRUE, nullptr);
      gst_bin_add(GST_BIN(pipeline), t.feed);
      REQUIRE(gst_element_link_pads(mixer, name, t.feed, "sink"));
      g_free(name);
      gst_element_sync_state_with_parent(t.feed);
    }
    gst_element_sync_state_with_parent(t.bin);
    alive.push_back(t);
    (*joins)++;
    if (alive.size() > 4) {
      leave(alive.front());
      alive.pop_front();
    }
    g_usleep(50000);
  }
  while (!alive.empty()) {
    leave(alive.front());
    alive.pop_front();
  }
  while (GstMessage *m = gst_bus_pop(bus))
    gst_message_unref(m);
  gst_object_unref(bus);
  *at_end = rss_mb();
}

void soak(const char *launch_line, bool feeds) {
  GError *err = nullptr;
  GstElement *pipeline = gst_parse_launch(launch_line, &err);
  REQUIRE(err == nullptr);
  GstElement *mixer = gst_bin_get_by_name(GST_BIN(pipeline), "m");
  REQUIRE(gst_element_set_state(pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  double at20, at_end;
  int joins;
  churn(pipeline, mixer, feeds, soak_seconds(), &at20, &at_end, &joins);
  printf("  at the end: %.1f MB after %d joins (%+.2f MB since 20 s)\n", at_end, joins,
         at_end - at20);
  INFO(joins << " joins; RSS " << at20 << " MB after 20 s, " << at_end << " MB at the end");
  CHECK(at_end - at20 <= 2.0);
  /* The mixer is still mixing: its permanent talker's output flows. */
  CHECK(GST_ELEMENT(mixer)->numsinkpads == 1);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(mixer);
  gst_object_unref(pipeline);
}

} // namespace

TEST_CASE("backchannelmixer: talkers joining and leaving every 50 ms leave no memory behind",
          "[soak][backchannelmixer]") {
  printf("backchannelmixer churn, %d s:\n", soak_seconds());
  soak("audiotestsrc is-live=true freq=200 volume=0.1 ! m.sink_0 "
       "backchannelmixer name=m force-live=true ! fakesink sync=true",
       false);
}

TEST_CASE("mixminus: participants joining and leaving every 50 ms leave no memory behind",
          "[soak][mixminus]") {
  printf("mixminus churn, %d s:\n", soak_seconds());
  soak("audiotestsrc is-live=true freq=200 volume=0.1 ! m.sink_0 mixminus name=m "
       "m.src_0 ! fakesink sync=true",
       true);
}
