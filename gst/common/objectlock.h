/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * costream::ObjectLock: GST_OBJECT_LOCK for a scope (libcamera's GLibLocker, for GstObject).
 *
 *   {
 *     costream::ObjectLock lk(self);   // GST_OBJECT_LOCK (self)
 *     settings = priv->settings;
 *   }                                  // GST_OBJECT_UNLOCK (self)
 *
 * unlock() ends it early (nothing may be pushed, queried or posted with the lock held).
 */
#pragma once

#include <gst/gst.h>

namespace costream {

class ObjectLock {
public:
  explicit ObjectLock(gpointer object) : object_(GST_OBJECT_CAST(object)) {
    GST_OBJECT_LOCK(object_);
  }
  ~ObjectLock() { unlock(); }
  void unlock() {
    if (object_)
      GST_OBJECT_UNLOCK(object_);
    object_ = nullptr;
  }
  ObjectLock(const ObjectLock &) = delete;
  ObjectLock &operator=(const ObjectLock &) = delete;

private:
  GstObject *object_;
};

/* A copy of `field` taken under the object lock of `object`. */
template <typename T> T locked_copy(gpointer object, const T &field) {
  ObjectLock lk(object);
  return field;
}

} // namespace costream
