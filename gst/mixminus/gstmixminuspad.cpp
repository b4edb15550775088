/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * GstMixMinusPad: a participant's sink pad. Its `slot` and `speaking` are written by the output
 * thread at every block.
 */

#include "mixminusprivate.h"

#define GST_CAT_DEFAULT gst_mix_minus_debug

enum {
  PROP_PAD_0,
  PROP_PAD_SLOT,
  PROP_PAD_SPEAKING,
};

G_DEFINE_TYPE(GstMixMinusPad, gst_mix_minus_pad, GST_TYPE_COSTREAM_MIXER_PAD);

static void gst_mix_minus_pad_constructed(GObject *object);
static void gst_mix_minus_pad_finalize(GObject *object);

static void gst_mix_minus_pad_get_property(GObject *object, guint prop_id, GValue *value,
                                           GParamSpec *pspec) {
  auto *pad = GST_MIX_MINUS_PAD(object);
  costream::ObjectLock lk(pad);
  switch (prop_id) {
  case PROP_PAD_SLOT:
    g_value_set_int(value, pad->slot);
    break;
  case PROP_PAD_SPEAKING:
    g_value_set_boolean(value, pad->speaking);
    break;
  default:
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
    break;
  }
}

static void gst_mix_minus_pad_class_init(GstMixMinusPadClass *klass) {
  auto *gobject_class = G_OBJECT_CLASS(klass);
  gobject_class->constructed = gst_mix_minus_pad_constructed;
  gobject_class->get_property = gst_mix_minus_pad_get_property;
  gobject_class->finalize = gst_mix_minus_pad_finalize;
  const auto ro = static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  g_object_class_install_property(gobject_class, PROP_PAD_SLOT,
                                  g_param_spec_int("slot", "Slot",
                                                   "Speaker slot this participant holds (-1: none)",
                                                   -1, G_MAXINT, -1, ro));
  g_object_class_install_property(
      gobject_class, PROP_PAD_SPEAKING,
      g_param_spec_boolean("speaking", "Speaking",
                           "Whether the participant's level is at or above the speech threshold",
                           FALSE, ro));
}

/* The participant's number comes from the pad's name, set at construction: the pad must have it
 * before the base class lists it for the output thread (set later, a block read in between
 * would take the newcomer for participant 0 and unpin them for that block). */
static void gst_mix_minus_pad_constructed(GObject *object) {
  G_OBJECT_CLASS(gst_mix_minus_pad_parent_class)->constructed(object);
  auto *pad = GST_MIX_MINUS_PAD(object);
  guint index = 0;
  if (GST_PAD_NAME(pad))
    sscanf(GST_PAD_NAME(pad), "sink_%u", &index);
  pad->index = index;
}

static void gst_mix_minus_pad_init(GstMixMinusPad *pad) {
  pad->index = 0;
  pad->srcpad = nullptr;
  pad->slot = -1;
  pad->speaking = FALSE;
  pad->priv = new GstMixMinusPadPrivate();
}

static void gst_mix_minus_pad_finalize(GObject *object) {
  auto *pad = GST_MIX_MINUS_PAD(object);
  delete pad->priv;
  pad->priv = nullptr;
  G_OBJECT_CLASS(gst_mix_minus_pad_parent_class)->finalize(object);
}

/* ------------------------------------------------------------------------------------------ */
/* Element                                                                                      */
