/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * AMF0 (Action Message Format 0), as RTMP commands and FLV script data use it: a bounds-checked
 * decoder with a nesting limit, and an encoder. No GStreamer types.
 */
#pragma once

#include "bytes.h"

#include <cstdint>
#include <string>
#include <vector>

namespace costream::rtmp::amf0 {

enum class Type : uint8_t {
  Number = 0x00,
  Boolean = 0x01,
  String = 0x02,
  Object = 0x03,
  Null = 0x05,
  Undefined = 0x06,
  Reference = 0x07,
  EcmaArray = 0x08,
  ObjectEnd = 0x09,
  StrictArray = 0x0a,
  Date = 0x0b,
  LongString = 0x0c,
  Unsupported = 0x0d,
  Xml = 0x0f,
  TypedObject = 0x10,
};

struct Property;

struct Value {
  Type type = Type::Null;
  double number = 0.0;         /* Number, Date (ms) */
  bool boolean = false;        /* Boolean */
  std::string string;          /* String, LongString, Xml; TypedObject: class name */
  std::vector<Property> props; /* Object, EcmaArray, TypedObject (in order) */
  std::vector<Value> items;    /* StrictArray */
  int16_t timezone = 0;        /* Date */
  uint16_t reference = 0;      /* Reference */

  static Value make_number(double d);
  static Value make_bool(bool b);
  static Value make_string(std::string s);
  static Value make_null();
  static Value make_object(std::vector<Property> props);

  /* Object/EcmaArray/TypedObject member, or nullptr. */
  const Value *get(const std::string &key) const;
  /* Convenience: the member's string / number if it is one. */
  bool get_string(const std::string &key, std::string *out) const;
  bool get_number(const std::string &key, double *out) const;
  bool is_string() const { return type == Type::String || type == Type::LongString; }
};

struct Property {
  std::string key;
  Value value;
};

struct Limits {
  unsigned max_depth = 16;     /* nested objects/arrays */
  size_t max_elements = 65536; /* values in one decode call, all levels */
};

/* Decodes one value at the reader's position. On failure returns false and sets `why`. */
bool decode(ByteReader &r, Value *out, std::string *why, const Limits &limits = {});
/* Decodes values until the end of the buffer (an RTMP command or FLV script tag). */
bool decode_all(const uint8_t *data, size_t size, std::vector<Value> *out, std::string *why,
                const Limits &limits = {});

void encode(const Value &v, std::vector<uint8_t> *out);

/* A short human-readable rendering (for logs and messages), bounded in length. */
std::string to_string(const Value &v, size_t max_len = 512);

} // namespace costream::rtmp::amf0
