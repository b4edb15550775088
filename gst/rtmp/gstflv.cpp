/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gstflv.h"

namespace costream::rtmp {

GstBuffer *make_buffer(std::vector<uint8_t> &&bytes, GstClockTime pts) {
  auto *v = new std::vector<uint8_t>(std::move(bytes));
  GstBuffer *b = gst_buffer_new_wrapped_full(
      GST_MEMORY_FLAG_READONLY, v->data(), v->size(), 0, v->size(), v,
      [](gpointer p) { delete static_cast<std::vector<uint8_t> *>(p); });
  GST_BUFFER_PTS(b) = pts;
  GST_BUFFER_DTS(b) = pts;
  return b;
}

GstStructure *metadata_structure(const amf0::Value &v) {
  GstStructure *s = gst_structure_new_empty("metadata");
  for (const auto &prop : v.props) {
    if (prop.key.empty() || !g_utf8_validate(prop.key.c_str(), -1, nullptr))
      continue;
    gchar *name =
        g_strcanon(g_strdup(prop.key.c_str()),
                   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", '_');
    if (!g_ascii_isalpha(name[0])) {
      g_free(name);
      continue;
    }
    const auto &val = prop.value;
    if (val.type == amf0::Type::Number)
      gst_structure_set(s, name, G_TYPE_DOUBLE, val.number, nullptr);
    else if (val.type == amf0::Type::Boolean)
      gst_structure_set(s, name, G_TYPE_BOOLEAN, static_cast<gboolean>(val.boolean), nullptr);
    else if (val.is_string() && g_utf8_validate(val.string.c_str(), -1, nullptr))
      gst_structure_set(s, name, G_TYPE_STRING, val.string.c_str(), nullptr);
    g_free(name);
  }
  return s;
}

} // namespace costream::rtmp
