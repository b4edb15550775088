#!/usr/bin/env python3
# Writes the fuzzers' seed corpora (tests/fuzz/corpus/<target>/): small, valid inputs of each
# format, so the fuzzers start from deep inside the parsers. Run once; the output is committed.
import os
import struct

here = os.path.dirname(os.path.abspath(__file__))


def amf_str(s):
    b = s.encode()
    return b'\x02' + struct.pack('>H', len(b)) + b


def amf_num(n):
    return b'\x00' + struct.pack('>d', n)


def amf_obj(props, marker=b'\x03'):
    out = marker
    for k, v in props:
        kb = k.encode()
        out += struct.pack('>H', len(kb)) + kb + v
    return out + b'\x00\x00\x09'


def ecma(props):
    return b'\x08' + struct.pack('>I', len(props)) + amf_obj(props, b'')


def chunk(csid, mtype, sid, ts, payload, size=128, fmt0=True):
    out = b''
    first = True
    off = 0
    while first or off < len(payload):
        if first:
            ext = ts >= 0xffffff
            out += bytes([csid & 0x3f])
            out += struct.pack('>I', 0xffffff if ext else ts)[1:]
            out += struct.pack('>I', len(payload))[1:] + bytes([mtype]) + struct.pack('<I', sid)
            if ext:
                out += struct.pack('>I', ts)
        else:
            out += bytes([0xc0 | (csid & 0x3f)])
            if ts >= 0xffffff:
                out += struct.pack('>I', ts)
        out += payload[off:off + size]
        off += size
        first = False
    return out


connect = amf_str('connect') + amf_num(1) + amf_obj(
    [('app', amf_str('live')), ('tcUrl', amf_str('rtmp://127.0.0.1/live')),
     ('objectEncoding', amf_num(0))])
create = amf_str('createStream') + amf_num(4) + b'\x05'
publish = amf_str('publish') + amf_num(5) + b'\x05' + amf_str('key?x=1') + amf_str('live')
meta = amf_str('@setDataFrame') + amf_str('onMetaData') + ecma(
    [('width', amf_num(320)), ('height', amf_num(240)), ('encoder', amf_str('Lavf')),
     ('stereo', b'\x01\x01')])
video_seq = bytes([0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 4, 0x67, 0x64, 0, 0x1f, 1,
                   0, 4, 0x68, 0xee, 0x3c, 0x80])
video = bytes([0x27, 1, 0, 0, 0x28, 0, 0, 0, 5, 0x41, 1, 2, 3, 4])
audio = bytes([0xaf, 1]) + bytes(range(40))
set_chunk = chunk(2, 1, 0, 0, struct.pack('>I', 4096))
ping = chunk(2, 4, 0, 0, struct.pack('>HI', 6, 1234))



def publish_session(pub):
    return (chunk(3, 20, 0, 0, connect) + set_chunk + chunk(3, 20, 0, 0, create, 4096) +
            chunk(8, 20, 1, 0, pub, 4096) + chunk(4, 18, 1, 0, meta, 4096) +
            chunk(6, 9, 1, 0, video_seq, 4096) + chunk(6, 9, 1, 40, video, 4096) +
            chunk(4, 8, 1, 23, audio, 4096) + ping +
            chunk(6, 9, 1, 0x1234567, video, 4096))


session = publish_session(publish)


def publish_key(key):
    return amf_str('publish') + amf_num(5) + b'\x05' + amf_str(key) + amf_str('live')



def flv_tag(t, ts, data):
    return (bytes([t]) + struct.pack('>I', len(data))[1:] + struct.pack('>I', ts & 0xffffff)[1:] +
            bytes([ts >> 24]) + b'\x00\x00\x00' + data + struct.pack('>I', 11 + len(data)))


flv = (b'FLV\x01\x05' + struct.pack('>I', 9) + b'\x00\x00\x00\x00' +
       flv_tag(18, 0, amf_str('onMetaData') + ecma([('duration', amf_num(3))])) +
       flv_tag(9, 0, video_seq) + flv_tag(8, 0, bytes([0xaf, 0, 0x11, 0x90])) +
       flv_tag(9, 40, video) + flv_tag(8, 21, audio))

seeds = {
    'amf0': {'connect': connect, 'publish': publish, 'metadata': meta,
             'strict': b'\x0a\x00\x00\x00\x02' + amf_num(1) + amf_str('x'),
             'date': b'\x0b' + struct.pack('>dh', 1.7e12, -60)},
    'chunk': {'session': b'\x07' + session, 'small': b'\x00' + chunk(3, 20, 0, 0, connect),
              'ext': b'\x10' + chunk(5, 9, 1, 0x1000000, video * 20)},
    'session': {'publish': b'\x00' + session, 'keyed': b'\x01' + session},
    'flv': {'file': flv},
    # the shared listener's elements serve keys "a" and "b", and any other key
    'listener': {'a': b'\x00' + publish_session(publish_key('a')),
                 'b': b'\x00' + publish_session(publish_key('b?t=1')),
                 'other': b'\x00' + publish_session(publish_key('other'))},
}
for target, files in seeds.items():
    d = os.path.join(here, 'corpus', target)
    os.makedirs(d, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(d, name), 'wb') as f:
            f.write(data)
