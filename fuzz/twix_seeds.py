"""Small twix seeds for the fuzz target (docs/fuzzing.md), made from twixtools' gre.dat: the
same multi-raid header, a short protocol (the ASCCONV and XProtocol entries the reader looks
at), 16 lines of 32 samples x 2 coils cut from the middle of gre.dat's k-space, and ACQEND; the
same as VB; truncations of both. gre.dat itself (1.6 MB) is larger than the fuzz run's max_len.

    python fuzz/twix_seeds.py GRE_DAT OUT_DIR
"""
import struct
import sys

gre, out = sys.argv[1], sys.argv[2]
b = open(gre, "rb").read()
SCANS_AT, SCAN_LEN = 10240 + 786112, 192 + 2 * (32 + 320 * 8)
prot = (
    "### ASCCONV BEGIN ###\nsKSpace.ucTrajectory\t = \t1\n"
    "sSliceArray.asSlice[0].dReadoutFOV\t = \t200.0\nsSliceArray.asSlice[0].dPhaseFOV\t = \t200.0\n"
    "sSliceArray.asSlice[0].dThickness\t = \t4.0\n### ASCCONV END ###\n"
).encode()
meas = b'<ParamDouble."flReadoutOSFactor">  { <Precision> 6  2.000000  }\n<ParamLong."alRegridMode">  { 1 1 }\n'


def header(pad_to=0):
    bufs = b""
    for name, text in ((b"MeasYaps", prot), (b"Meas", meas)):
        bufs += name + b"\0" + struct.pack("<I", len(text)) + text
    n = 8 + len(bufs)
    if n < pad_to:
        bufs += b" " * (pad_to - n)
        n = pad_to
    return struct.pack("<II", n, 2) + bufs


def lines():
    for k, lin in enumerate(range(72, 88)):
        p = SCANS_AT + lin * SCAN_LEN
        mdh = bytearray(b[p : p + 192])
        mdh[0:4] = struct.pack("<I", 192 + 2 * (32 + 256))
        mdh[48:50] = struct.pack("<H", 32)
        mdh[52:54] = struct.pack("<H", k)
        mdh[84:86] = struct.pack("<H", 16)
        mdh[96:98] = struct.pack("<H", 8)
        if k % 2:
            mdh[40:48] = struct.pack("<Q", struct.unpack("<Q", mdh[40:48])[0] | 1 << 24)
        chans = []
        for c in range(2):
            d = p + 192 + c * (32 + 2560)
            chans.append((b[d : d + 32], b[d + 32 + 8 * 144 : d + 32 + 8 * 176]))
        yield bytes(mdh), chans


def vd():
    body = header()
    for mdh, chans in lines():
        body += mdh + b"".join(h + s for h, s in chans)
    end = bytearray(192)
    end[0:4] = struct.pack("<I", 352)
    end[40] = 1
    body += bytes(end) + bytes(160)
    raid = bytearray(b[:10240])
    raid[24:32] = struct.pack("<Q", len(body))
    return bytes(raid) + body


def vb():
    body = header(pad_to=10240)
    for mdh, chans in lines():
        m = bytearray(128)
        m[0:4] = struct.pack("<I", 2 * (128 + 256))
        m[20:28], m[28:32], m[32:64] = mdh[40:48], mdh[48:52], mdh[52:84]
        m[64:66], m[76:80] = mdh[84:86], mdh[96:100]
        body += b"".join(bytes(m) + s for _, s in chans)
    end = bytearray(128)
    end[20] = 1
    return body + bytes(end)


for name, data in (("mini_vd", vd()), ("mini_vb", vb())):
    open(f"{out}/{name}.dat", "wb").write(data)
    for cut in (len(data) // 3, len(data) - 300, len(data) - 100):
        open(f"{out}/{name}_cut{cut}.dat", "wb").write(data[:cut])
