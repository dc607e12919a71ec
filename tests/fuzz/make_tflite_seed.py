#!/usr/bin/env python3
"""make_tflite_seed.py - writes a tiny float32 TFLite model (a "TFL3" FlatBuffer) for the
fuzz_tflite seed corpus, built field by field from the TFLite schema
(tensorflow/lite/schema/schema.fbs), so the corpus holds no downloaded model.

    python3 tests/fuzz/make_tflite_seed.py OUT.tflite

The network: input 4x4x1 -> CONV_2D 3x3 (2 filters, stride 2, SAME, RELU) ->
MAX_POOL_2D 2x2 -> FULLY_CONNECTED (3) -> output [1, 3].
"""
import struct
import sys


class Table:
    def __init__(self, fields):
        self.fields = fields  # field id -> (kind, value); kinds u8 i8 i32 u32 off


class Vec:
    def __init__(self, kind, items, align=4):
        self.kind, self.items, self.align = kind, items, align  # kind: i32 u8 off


class Str:
    def __init__(self, text):
        self.text = text.encode()


def layout(obj, buf):
    """Appends obj (then its children, at higher addresses) to buf; returns obj's position."""
    def pad(align):
        while len(buf) % align:
            buf.append(0)

    patches = []  # (field position, child)
    if isinstance(obj, Table):
        ids = sorted(obj.fields)
        n = ids[-1] + 1 if ids else 0
        vt_size = 4 + 2 * n
        while (len(buf) + vt_size) % 4:
            buf.append(0)
        vt_pos = len(buf)
        table_size = 4 + 4 * len(ids)
        offsets = [0] * n
        for slot, fid in enumerate(ids):
            offsets[fid] = 4 + 4 * slot
        buf += struct.pack('<HH', vt_size, table_size) + b''.join(struct.pack('<H', o) for o in offsets)
        pos = len(buf)
        buf += struct.pack('<i', pos - vt_pos)
        for fid in ids:
            kind, value = obj.fields[fid]
            if kind == 'off':
                patches.append((len(buf), value))
                buf += b'\0\0\0\0'
            else:
                fmt = {'u8': '<B3x', 'i8': '<b3x', 'i32': '<i', 'u32': '<I'}[kind]
                buf += struct.pack(fmt, value)
    elif isinstance(obj, Vec):
        # the element data (after the u32 count) starts at a multiple of obj.align
        while (len(buf) + 4) % obj.align:
            buf.append(0)
        pos = len(buf)
        buf += struct.pack('<I', len(obj.items))
        for item in obj.items:
            if obj.kind == 'off':
                patches.append((len(buf), item))
                buf += b'\0\0\0\0'
            else:
                buf += struct.pack({'i32': '<i', 'u8': '<B'}[obj.kind], item)
        pad(4)
    else:
        pad(4)
        pos = len(buf)
        buf += struct.pack('<I', len(obj.text)) + obj.text + b'\0'
        pad(4)
    for field_pos, child in patches:
        child_pos = layout(child, buf)
        buf[field_pos:field_pos + 4] = struct.pack('<I', child_pos - field_pos)
    return pos


def floats(values):
    return Vec('u8', list(struct.pack('<%df' % len(values), *values)), align=16)


def tensor(name, shape, buffer):
    return Table({0: ('off', Vec('i32', shape)), 1: ('u8', 0), 2: ('u32', buffer),
                  3: ('off', Str(name))})


def opcode(code):
    return Table({0: ('i8', code), 2: ('i32', 1), 3: ('i32', code)})


def operator(index, inputs, outputs, options_type=None, options=None):
    f = {0: ('u32', index), 1: ('off', Vec('i32', inputs)), 2: ('off', Vec('i32', outputs))}
    if options_type is not None:
        f[3] = ('u8', options_type)
        f[4] = ('off', options)
    return Table(f)


def model():
    conv_w = [0.1 * (i - 9) for i in range(18)]
    fc_w = [0.25, -0.5, 0.75, 1.0, -0.125, 0.5]
    buffers = [Table({}), Table({0: ('off', floats(conv_w))}),
               Table({0: ('off', floats([0.5, -0.5]))}), Table({0: ('off', floats(fc_w))}),
               Table({0: ('off', floats([0.1, 0.2, 0.3]))})]
    tensors = [tensor('input', [1, 4, 4, 1], 0), tensor('conv/w', [2, 3, 3, 1], 1),
               tensor('conv/b', [2], 2), tensor('conv', [1, 2, 2, 2], 0),
               tensor('pool', [1, 1, 1, 2], 0), tensor('fc/w', [3, 2], 3),
               tensor('fc/b', [3], 4), tensor('embeddings', [1, 3], 0)]
    conv_opts = Table({0: ('u8', 0), 1: ('i32', 2), 2: ('i32', 2), 3: ('i8', 1),
                       4: ('i32', 1), 5: ('i32', 1)})
    pool_opts = Table({0: ('u8', 1), 1: ('i32', 2), 2: ('i32', 2), 3: ('i32', 2),
                       4: ('i32', 2), 5: ('i8', 0)})
    fc_opts = Table({0: ('i8', 0), 1: ('u8', 0), 2: ('u8', 0)})
    operators = [operator(0, [0, 1, 2], [3], 1, conv_opts),
                 operator(1, [3], [4], 5, pool_opts),
                 operator(2, [4, 5, 6], [7], 8, fc_opts)]
    subgraph = Table({0: ('off', Vec('off', tensors)), 1: ('off', Vec('i32', [0])),
                      2: ('off', Vec('i32', [7])), 3: ('off', Vec('off', operators)),
                      4: ('off', Str('main'))})
    return Table({0: ('u32', 3), 1: ('off', Vec('off', [opcode(3), opcode(17), opcode(9)])),
                  2: ('off', Vec('off', [subgraph])), 3: ('off', Str('facever fuzz seed')),
                  4: ('off', Vec('off', buffers))})


def main():
    buf = bytearray(b'\0\0\0\0TFL3')
    root = layout(model(), buf)
    buf[0:4] = struct.pack('<I', root)
    with open(sys.argv[1], 'wb') as f:
        f.write(buf)


main()
