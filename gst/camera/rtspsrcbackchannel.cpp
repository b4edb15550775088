/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "rtspsrcbackchannel.h"

#include <cstdio>

namespace costream {

namespace {

struct Behaviour {
  const char *signal;
  bool takes;
};

Behaviour behaviour() {
  static const Behaviour b = [] {
    GstElementFactory *f = gst_element_factory_find("rtspsrc");
    if (!f)
      return Behaviour{"push-backchannel-sample", false};
    GType type = gst_element_factory_get_element_type(f);
    if (type == 0) {
      GstPluginFeature *loaded = gst_plugin_feature_load(GST_PLUGIN_FEATURE(f));
      if (loaded) {
        type = gst_element_factory_get_element_type(GST_ELEMENT_FACTORY(loaded));
        gst_object_unref(loaded);
      }
    }
    unsigned major = 0, minor = 0, micro = 0;
    if (GstPlugin *plugin = gst_plugin_feature_get_plugin(GST_PLUGIN_FEATURE(f))) {
      std::sscanf(gst_plugin_get_version(plugin), "%u.%u.%u", &major, &minor, &micro);
      gst_object_unref(plugin);
    }
    gst_object_unref(f);
    if (type == 0 || g_signal_lookup("push-backchannel-sample", type) == 0)
      return Behaviour{"push-backchannel-buffer", true};
    const bool fixed = major > 1 || (major == 1 && (minor > 22 || (minor == 22 && micro >= 1)));
    return Behaviour{"push-backchannel-sample", !fixed};
  }();
  return b;
}

} // namespace

bool rtspsrc_backchannel_takes_sample() {
  return behaviour().takes;
}

GstFlowReturn rtspsrc_push_backchannel(GstElement *rtspsrc, guint stream_id, GstSample *sample) {
  const Behaviour b = behaviour();
  GstFlowReturn ret = GST_FLOW_OK;
  if (b.takes)
    gst_sample_ref(sample);
  g_signal_emit_by_name(rtspsrc, b.signal, stream_id, sample, &ret);
  return ret;
}

} // namespace costream
