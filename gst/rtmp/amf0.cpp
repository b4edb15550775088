/* costream
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "amf0.h"

#include <cmath>
#include <cstdio>

namespace costream::rtmp::amf0 {

Value Value::make_number(double d) {
  Value v;
  v.type = Type::Number;
  v.number = d;
  return v;
}
Value Value::make_bool(bool b) {
  Value v;
  v.type = Type::Boolean;
  v.boolean = b;
  return v;
}
Value Value::make_string(std::string s) {
  Value v;
  v.type = s.size() > 0xffff ? Type::LongString : Type::String;
  v.string = std::move(s);
  return v;
}
Value Value::make_null() {
  return Value();
}
Value Value::make_object(std::vector<Property> props) {
  Value v;
  v.type = Type::Object;
  v.props = std::move(props);
  return v;
}

const Value *Value::get(const std::string &key) const {
  for (const auto &p : props)
    if (p.key == key)
      return &p.value;
  return nullptr;
}

bool Value::get_string(const std::string &key, std::string *out) const {
  const Value *v = get(key);
  if (!v || !v->is_string())
    return false;
  *out = v->string;
  return true;
}

bool Value::get_number(const std::string &key, double *out) const {
  const Value *v = get(key);
  if (!v || v->type != Type::Number)
    return false;
  *out = v->number;
  return true;
}

namespace {

struct Decoder {
  ByteReader &r;
  std::string *why;
  const Limits &limits;
  size_t elements = 0;

  bool fail(const char *msg) {
    if (why && why->empty())
      *why = msg;
    return false;
  }

  bool key(std::string *k) {
    uint16_t len;
    if (!r.be16(&len) || !r.bytes(len, k))
      return fail("truncated property name");
    return true;
  }

  /* Properties until the object-end marker (00 00 09). */
  bool properties(std::vector<Property> *props, unsigned depth) {
    for (;;) {
      std::string k;
      if (!key(&k))
        return false;
      if (k.empty()) {
        uint8_t marker;
        if (!r.u8(&marker))
          return fail("truncated object end");
        if (marker == static_cast<uint8_t>(Type::ObjectEnd))
          return true;
        /* an empty key with a value: legal, if odd */
        Property p;
        if (!value_of_type(marker, &p.value, depth))
          return false;
        props->push_back(std::move(p));
        continue;
      }
      Property p;
      p.key = std::move(k);
      if (!value(&p.value, depth))
        return false;
      props->push_back(std::move(p));
    }
  }

  bool value(Value *v, unsigned depth) {
    uint8_t marker;
    if (!r.u8(&marker))
      return fail("truncated value");
    return value_of_type(marker, v, depth);
  }

  bool value_of_type(uint8_t marker, Value *v, unsigned depth) {
    if (++elements > limits.max_elements)
      return fail("too many values");
    v->type = static_cast<Type>(marker);
    switch (static_cast<Type>(marker)) {
    case Type::Number:
      if (!r.be_double(&v->number))
        return fail("truncated number");
      return true;
    case Type::Boolean: {
      uint8_t b;
      if (!r.u8(&b))
        return fail("truncated boolean");
      v->boolean = b != 0;
      return true;
    }
    case Type::String: {
      uint16_t len;
      if (!r.be16(&len) || !r.bytes(len, &v->string))
        return fail("truncated string");
      return true;
    }
    case Type::LongString:
    case Type::Xml: {
      uint32_t len;
      if (!r.be32(&len) || !r.bytes(len, &v->string))
        return fail("truncated long string");
      return true;
    }
    case Type::Null:
    case Type::Undefined:
    case Type::Unsupported:
      return true;
    case Type::Reference:
      if (!r.be16(&v->reference))
        return fail("truncated reference");
      return true;
    case Type::Date: {
      uint16_t tz;
      if (!r.be_double(&v->number) || !r.be16(&tz))
        return fail("truncated date");
      v->timezone = static_cast<int16_t>(tz);
      return true;
    }
    case Type::Object:
      if (depth >= limits.max_depth)
        return fail("objects nested too deep");
      return properties(&v->props, depth + 1);
    case Type::TypedObject:
      if (depth >= limits.max_depth)
        return fail("objects nested too deep");
      if (!key(&v->string))
        return false;
      return properties(&v->props, depth + 1);
    case Type::EcmaArray: {
      uint32_t count; /* a hint only: the members end with the object-end marker */
      if (!r.be32(&count))
        return fail("truncated ECMA array");
      if (depth >= limits.max_depth)
        return fail("objects nested too deep");
      return properties(&v->props, depth + 1);
    }
    case Type::StrictArray: {
      uint32_t count;
      if (!r.be32(&count))
        return fail("truncated strict array");
      if (count > r.remaining()) /* every value takes at least one byte */
        return fail("strict array longer than its data");
      if (depth >= limits.max_depth)
        return fail("arrays nested too deep");
      v->items.reserve(count);
      for (uint32_t i = 0; i < count; i++) {
        Value item;
        if (!value(&item, depth + 1))
          return false;
        v->items.push_back(std::move(item));
      }
      return true;
    }
    case Type::ObjectEnd:
      return fail("object end outside an object");
    }
    return fail("unknown AMF0 type");
  }
};

} // namespace

bool decode(ByteReader &r, Value *out, std::string *why, const Limits &limits) {
  Decoder d{r, why, limits};
  *out = Value();
  return d.value(out, 0);
}

bool decode_all(const uint8_t *data, size_t size, std::vector<Value> *out, std::string *why,
                const Limits &limits) {
  ByteReader r(data, size);
  Decoder d{r, why, limits};
  out->clear();
  while (!r.empty()) {
    Value v;
    if (!d.value(&v, 0))
      return false;
    out->push_back(std::move(v));
  }
  return true;
}

namespace {

void encode_key(const std::string &k, ByteWriter &w) {
  const size_t n = std::min<size_t>(k.size(), 0xffff);
  w.be16(static_cast<uint16_t>(n));
  w.bytes(k.data(), n);
}

void encode_props(const std::vector<Property> &props, ByteWriter &w) {
  for (const auto &p : props) {
    encode_key(p.key, w);
    std::vector<uint8_t> tmp;
    encode(p.value, &tmp);
    w.bytes(tmp.data(), tmp.size());
  }
  w.be16(0);
  w.u8(static_cast<uint8_t>(Type::ObjectEnd));
}

} // namespace

void encode(const Value &v, std::vector<uint8_t> *out) {
  ByteWriter w(out);
  Type t = v.type;
  if (t == Type::String && v.string.size() > 0xffff)
    t = Type::LongString;
  w.u8(static_cast<uint8_t>(t));
  switch (t) {
  case Type::Number:
    w.be_double(v.number);
    break;
  case Type::Boolean:
    w.u8(v.boolean ? 1 : 0);
    break;
  case Type::String:
    encode_key(v.string, w);
    break;
  case Type::LongString:
  case Type::Xml:
    w.be32(static_cast<uint32_t>(v.string.size()));
    w.str(v.string);
    break;
  case Type::Null:
  case Type::Undefined:
  case Type::Unsupported:
  case Type::ObjectEnd:
    break;
  case Type::Reference:
    w.be16(v.reference);
    break;
  case Type::Date:
    w.be_double(v.number);
    w.be16(static_cast<uint16_t>(v.timezone));
    break;
  case Type::Object:
    encode_props(v.props, w);
    break;
  case Type::TypedObject:
    encode_key(v.string, w);
    encode_props(v.props, w);
    break;
  case Type::EcmaArray:
    w.be32(static_cast<uint32_t>(v.props.size()));
    encode_props(v.props, w);
    break;
  case Type::StrictArray:
    w.be32(static_cast<uint32_t>(v.items.size()));
    for (const auto &i : v.items)
      encode(i, out);
    break;
  }
}

namespace {

void render(const Value &v, std::string *s, size_t max_len) {
  if (s->size() >= max_len)
    return;
  char buf[64];
  switch (v.type) {
  case Type::Number:
    std::snprintf(buf, sizeof(buf), "%g", v.number);
    *s += buf;
    break;
  case Type::Boolean:
    *s += v.boolean ? "true" : "false";
    break;
  case Type::String:
  case Type::LongString:
  case Type::Xml:
    *s += '"';
    *s += v.string.substr(0, 128);
    *s += '"';
    break;
  case Type::Null:
    *s += "null";
    break;
  case Type::Undefined:
    *s += "undefined";
    break;
  case Type::Object:
  case Type::EcmaArray:
  case Type::TypedObject:
    *s += '{';
    for (size_t i = 0; i < v.props.size() && s->size() < max_len; i++) {
      if (i)
        *s += ", ";
      *s += v.props[i].key.substr(0, 64);
      *s += ": ";
      render(v.props[i].value, s, max_len);
    }
    *s += '}';
    break;
  case Type::StrictArray:
    *s += '[';
    for (size_t i = 0; i < v.items.size() && s->size() < max_len; i++) {
      if (i)
        *s += ", ";
      render(v.items[i], s, max_len);
    }
    *s += ']';
    break;
  default:
    *s += "?";
    break;
  }
}

} // namespace

std::string to_string(const Value &v, size_t max_len) {
  std::string s;
  render(v, &s, max_len);
  if (s.size() > max_len)
    s.resize(max_len);
  return s;
}

} // namespace costream::rtmp::amf0
