"""The bad-input corpus of issue 16: hostile and damaged files of every kind scorerecon reads,
made with nibabel, pydicom and numpy (and byte patches where those libraries refuse to write
something broken), plus legal oddities that must read exactly as nibabel / pydicom read them.

    python tests/bad_input/corpus.py OUT BASE_CT BASE_MRI

BASE_CT / BASE_MRI are measurement folders written by `scorerecon simulate` (so the sidecars
follow the current schema); the bad measurements are mutated copies of them.

Writes OUT/cases.json: {"bad": [...], "good": [...]}. A bad case is
{"name", "path", "kind", "names": [substrings, one of which the error line must contain],
 "why": substring the error must contain (optional), "commands": ["info", "convert", "ct"|"mri"]}.
A good case is {"name", "path", "expected": raw float32 file in the Volume's order (C order over
t, k, j, i = nibabel's array in Fortran order), "dims": [nx, ny, nz]}.
"""

import json
import os
import shutil
import struct
import sys
import gzip
import zlib

import nibabel as nib
import numpy as np
import pydicom
import pydicom.data
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

OUT, BASE_CT, BASE_MRI = sys.argv[1], os.path.abspath(sys.argv[2]), os.path.abspath(sys.argv[3])
os.makedirs(OUT, exist_ok=True)
bad, good = [], []


def p(name):
    return os.path.join(OUT, name)


def add_bad(name, path, kind, why=None, names=None, commands=("info", "convert")):
    bad.append(
        {
            "name": name,
            "path": path,
            "kind": kind,
            "why": why,
            "names": names or [os.path.basename(path.rstrip("/"))],
            "commands": list(commands),
        }
    )


# ---------------------------------------------------------------- NIfTI

rng = np.random.default_rng(16)
BASE = rng.integers(-1000, 2000, size=(8, 8, 4)).astype(np.int16)


def nifti_bytes(arr=BASE, **fields):
    img = nib.Nifti1Image(arr, np.diag([0.8, 0.9, 2.5, 1.0]))
    img.header["descrip"] = b"[CT] corpus"
    for k, v in fields.items():
        img.header[k] = v
    path = p("_tmp.nii")
    nib.save(img, path)
    data = bytearray(open(path, "rb").read())
    os.remove(path)
    return data


def patch(data, fmt, offset, value):
    struct.pack_into("<" + fmt, data, offset, value)
    return data


# Header offsets (NIfTI-1, little endian): dim 40 (8 x i16), datatype 70, bitpix 72,
# pixdim 76 (8 x f32), vox_offset 108, scl_slope 112, scl_inter 116, sform_code 254, srow_x 280.
def bad_nifti(name, why, edit, commands=("info", "convert", "ct"), gz=False):
    data = edit(nifti_bytes())
    path = p(name + (".nii.gz" if gz else ".nii"))
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(bytes(data))
    else:
        open(path, "wb").write(bytes(data))
    add_bad(name, path, "nifti", why, commands=commands)


def datatype(code, bitpix):
    return lambda d: patch(patch(d, "h", 70, code), "h", 72, bitpix)


bad_nifti("n_complex128_on_int16", "truncated", datatype(1792, 128))
bad_nifti("n_rgb24_header", None, datatype(128, 24))
bad_nifti("n_float32_bitpix8", "bitpix", datatype(16, 8))
bad_nifti("n_int16_bitpix1", "bitpix", datatype(4, 1))
bad_nifti("n_int16_bitpix1_gz", "bitpix", datatype(4, 1), gz=True)
bad_nifti("n_unknown_datatype", "datatype", datatype(999, 16))
bad_nifti("n_float128", "float128", datatype(1536, 128))
bad_nifti("n_vox_offset_1e9", "vox_offset", lambda d: patch(d, "f", 108, 1e9))
bad_nifti("n_vox_offset_negative", "vox_offset", lambda d: patch(d, "f", 108, -100.0))
bad_nifti("n_vox_offset_inside_header", "vox_offset", lambda d: patch(d, "f", 108, 100.0))
bad_nifti("n_vox_offset_fraction", "vox_offset", lambda d: patch(d, "f", 108, 352.5))
bad_nifti("n_vox_offset_past_end_gz", "truncated", lambda d: patch(d, "f", 108, 4096.0), gz=True)
bad_nifti("n_scl_inter_nan", "scl_inter", lambda d: patch(patch(d, "f", 112, 2.0), "f", 116, float("nan")))
bad_nifti("n_pixdim1_zero", "pixdim[1]", lambda d: patch(d, "f", 80, 0.0))
bad_nifti("n_pixdim2_negative", "pixdim[2]", lambda d: patch(d, "f", 84, -1.0))
bad_nifti("n_pixdim3_nan", "pixdim[3]", lambda d: patch(d, "f", 88, float("nan")))
bad_nifti("n_dim2_zero", "dim[2]", lambda d: patch(d, "h", 44, 0))
bad_nifti("n_dim1_negative", "dim[1]", lambda d: patch(d, "h", 42, -5))
bad_nifti("n_dim0_zero", "dim[0]", lambda d: patch(d, "h", 40, 0))
bad_nifti("n_dims_huge", None, lambda d: patch(patch(patch(d, "h", 42, 32767), "h", 44, 32767), "h", 46, 32767))
bad_nifti("n_dims_huge_gz", None, lambda d: patch(patch(patch(d, "h", 42, 32767), "h", 44, 32767), "h", 46, 32767), gz=True)
bad_nifti("n_5d", "5-D", lambda d: patch(patch(d, "h", 40, 5), "h", 50, 2))
bad_nifti("n_sizeof_hdr_0", "sizeof_hdr", lambda d: patch(d, "i", 0, 0))
bad_nifti("n_sform_nan", "sform", lambda d: patch(patch(d, "h", 254, 1), "f", 280, float("nan")))
bad_nifti("n_truncated", "truncated", lambda d: d[: 352 + 100])
bad_nifti("n_truncated_gz", "truncated", lambda d: d[: 352 + 100], gz=True)
bad_nifti("n_header_only", None, lambda d: d[:200])
bad_nifti("n_empty", None, lambda d: bytearray())

# A gzip stream cut in the middle, and a ".nii.gz" that is not gzip at all.
full = gzip.compress(bytes(nifti_bytes(rng.normal(size=(32, 32, 8)).astype(np.float32))))
open(p("n_gz_cut.nii.gz"), "wb").write(full[: len(full) // 2])
add_bad("n_gz_cut", p("n_gz_cut.nii.gz"), "nifti", commands=("info", "convert", "ct"))
open(p("n_not_gzip.nii.gz"), "wb").write(b"this is not gzip data at all" * 20)
add_bad("n_not_gzip", p("n_not_gzip.nii.gz"), "nifti", commands=("info", "convert", "ct"))

# Complex images (nibabel-made, consistent headers): not an image, use a measurement file.
for name, dtype in [("n_complex64", np.complex64), ("n_complex128", np.complex128)]:
    arr = (rng.normal(size=(8, 8, 2)) + 1j * rng.normal(size=(8, 8, 2))).astype(dtype)
    nib.save(nib.Nifti1Image(arr, np.eye(4)), p(name + ".nii.gz"))
    add_bad(name, p(name + ".nii.gz"), "nifti", "measurement", commands=("info", "convert", "mri"))

# RGB through nibabel's structured dtype.
rgb = np.zeros((4, 4, 2), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
nib.save(nib.Nifti1Image(rgb, np.eye(4)), p("n_rgb24.nii.gz"))
add_bad("n_rgb24", p("n_rgb24.nii.gz"), "nifti", "colour")

# NIfTI-2, a .hdr without its .img, a pair whose .img is short.
nib.save(nib.Nifti2Image(BASE, np.eye(4)), p("n_nifti2.nii"))
add_bad("n_nifti2", p("n_nifti2.nii"), "nifti", "NIfTI-2")
nib.save(nib.Nifti1Pair(BASE, np.eye(4)), p("n_pair_noimg.hdr"))
os.remove(p("n_pair_noimg.img"))
add_bad("n_pair_noimg", p("n_pair_noimg.hdr"), "nifti", ".img")
nib.save(nib.Nifti1Pair(BASE, np.eye(4)), p("n_pair_short.hdr"))
open(p("n_pair_short.img"), "r+b").truncate(100)
add_bad("n_pair_short", p("n_pair_short.hdr"), "nifti", names=["n_pair_short"])

# An all-NaN volume reads (info, NIfTI out) but makes no picture: PNG is refused.
nib.save(nib.Nifti1Image(np.full((8, 8, 2), np.nan, np.float32), np.eye(4)), p("n_all_nan.nii.gz"))
add_bad("n_all_nan_png", p("n_all_nan.nii.gz"), "nifti", "finite", names=["n_all_nan"], commands=("png",))

# ---------------------------------------------------------------- DICOM


def ct_dataset(rows=16, cols=16, bits=16, pixels=None):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID = "1.2.3.16"
    ds.StudyInstanceUID = "1.2.3.17"
    ds.Modality = "CT"
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "ID-16"
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 1
    ds.RescaleSlope = "1"
    ds.RescaleIntercept = "-1024"
    ds.PixelSpacing = [0.7, 0.7]
    ds.ImagePositionPatient = [0, 0, 0]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SliceThickness = "1.0"
    if pixels is None:
        pixels = rng.integers(0, 3000, size=(rows, cols)).astype("<i2").tobytes()
    ds.PixelData = pixels
    return ds


def bad_dicom(name, why, edit, commands=("info", "convert", "ct")):
    ds = ct_dataset()
    edit(ds)
    path = p(name + ".dcm")
    ds.save_as(path, enforce_file_format=True)
    add_bad(name, path, "dicom", why, commands=commands)


def setattrs(**kv):
    def f(ds):
        for k, v in kv.items():
            setattr(ds, k, v)

    return f


bad_dicom("d_rows_cols_zero", "Rows x Columns", setattrs(Rows=0, Columns=0))
bad_dicom("d_rows_zero", "Rows x Columns", setattrs(Rows=0))
bad_dicom("d_rows_too_many", "truncated", setattrs(Rows=32))
bad_dicom("d_rows_too_few", "do not match", setattrs(Rows=8))
bad_dicom("d_columns_too_few", "do not match", setattrs(Columns=4))
bad_dicom("d_rows_huge", None, setattrs(Rows=65535, Columns=65535))
bad_dicom("d_slope_zero", "RescaleSlope", setattrs(RescaleSlope="0"))
bad_dicom("d_slope_nan", "RescaleSlope", setattrs(RescaleSlope="NaN"))
bad_dicom("d_slope_inf", "RescaleSlope", setattrs(RescaleSlope="Inf"))
bad_dicom("d_intercept_nan", "RescaleIntercept", setattrs(RescaleIntercept="NaN"))
bad_dicom("d_spacing_zero", "PixelSpacing", setattrs(PixelSpacing=[0, 0]))
bad_dicom("d_spacing_negative", "PixelSpacing", setattrs(PixelSpacing=[-0.7, 0.7]))
# BitsStored beyond BitsAllocated made dicom-pixeldata's LUT assert (a panic; found by fuzzing).
bad_dicom("d_bits_stored_51", "BitsStored 51", setattrs(BitsStored=51))
bad_dicom("d_bits_stored_zero", "BitsStored 0", setattrs(BitsStored=0))
bad_dicom("d_high_bit_16", "HighBit 16", setattrs(HighBit=16))
bad_dicom("d_spacing_one_value", "PixelSpacing", setattrs(PixelSpacing=[0.7]))
bad_dicom("d_thickness_negative", "SliceThickness", setattrs(SliceThickness="-3"))
bad_dicom("d_bits_12", "BitsAllocated", setattrs(BitsAllocated=12, BitsStored=12, HighBit=11))
bad_dicom("d_frames_zero", "NumberOfFrames", setattrs(NumberOfFrames="0"))
bad_dicom("d_frames_three", "truncated", setattrs(NumberOfFrames="3"))
bad_dicom("d_rgb", "colour", setattrs(SamplesPerPixel=3, PhotometricInterpretation="RGB"))
bad_dicom("d_palette", "PALETTE", setattrs(PhotometricInterpretation="PALETTE COLOR"))
bad_dicom("d_no_pixel_data", None, lambda ds: delattr(ds, "PixelData"))


def jpeg_ls_claim(ds):
    from pydicom.encaps import encapsulate

    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.80"
    ds.PixelData = encapsulate([ds.PixelData])


bad_dicom("d_jpegls_claimed", "JPEG-LS", jpeg_ls_claim)


# RLE Lossless frames whose header or segments do not fit the image (16x16 pixels of 16 bits: two
# segments of 256 bytes each); a short segment once panicked inside dicom-rs (found by fuzzing).
def rle(header_words, segments):
    def f(ds):
        from pydicom.encaps import encapsulate

        ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.5"
        header = struct.pack("<16I", *(header_words + [0] * (16 - len(header_words))))
        ds.PixelData = encapsulate([header + b"".join(segments)])

    return f


half = bytes([127]) + bytes(128)  # a PackBits literal run of 128 bytes
bad_dicom("d_rle_short_segment", "segment 0 decodes to 128 bytes", rle([2, 64, 64 + len(half)], [half, half]))
bad_dicom("d_rle_segment_count", "declares 5 segments", rle([5, 64], [half]))
bad_dicom("d_rle_offsets", "segment 0 spans bytes 64..100000", rle([2, 64, 100000], [half, half]))

good_dcm = p("_good.dcm")
ct_dataset().save_as(good_dcm, enforce_file_format=True)
raw = open(good_dcm, "rb").read()
open(p("d_truncated.dcm"), "wb").write(raw[: len(raw) // 2])
add_bad("d_truncated", p("d_truncated.dcm"), "dicom", commands=("info", "convert", "ct"))
open(p("d_header_only.dcm"), "wb").write(raw[:200])
add_bad("d_header_only", p("d_header_only.dcm"), "dicom")
open(p("d_dicm_garbage.dcm"), "wb").write(b"\0" * 128 + b"DICM" + bytes(rng.integers(0, 256, 500, dtype=np.uint8)))
add_bad("d_dicm_garbage", p("d_dicm_garbage.dcm"), "dicom")
# Declared lengths beyond the file (a damaged length once made dicom-rs allocate up to 4 GiB
# before failing): the Pixel Data length, a meta element's, and pydicom's own UN_sequence.dcm.
def patch_length(data, tag, value):
    at = data.index(tag) + 8  # tag (4), VR (2), reserved (2), then the 4-byte length
    return data[:at] + struct.pack("<I", value) + data[at + 4 :]


def huge_length(name, ds, tag, edit=lambda d: d):
    """Saves `ds` as NAME.dcm with the length of element `tag` (its first 6 bytes) made huge."""
    ds.save_as(p(f"{name}.dcm"), enforce_file_format=True)
    d = edit(open(p(f"{name}.dcm"), "rb").read())
    open(p(f"{name}.dcm"), "wb").write(patch_length(d, tag, 0xE000FFFE))
    add_bad(name, p(f"{name}.dcm"), "dicom", "declares 3758161918 value bytes")


open(p("d_length_huge.dcm"), "wb").write(patch_length(raw, b"\xe0\x7f\x10\x00OW", 0xE000FFFE))
add_bad("d_length_huge", p("d_length_huge.dcm"), "dicom", "declares 3758161918 value bytes", commands=("info", "convert", "ct"))
open(p("d_meta_length_huge.dcm"), "wb").write(patch_length(raw, b"\x02\x00\x01\x00OB", 0xFFFFFFF0))
add_bad("d_meta_length_huge", p("d_meta_length_huge.dcm"), "dicom", "meta element (0002,0001) declares")
# Two the dicom fuzz target found after that fix: a meta element whose group is not 2 inside the
# group length (dicom-object reads on), and a huge length inside a deflated data set.
bent = patch_length(raw, b"\xe0\x7f\x10\x00OW", 0xE000FFFE).replace(b"\x02\x00\x03\x00UI", b"\x00\x00\x03\x00UI", 1)
open(p("d_meta_group_bent.dcm"), "wb").write(bent)
add_bad("d_meta_group_bent", p("d_meta_group_bent.dcm"), "dicom", "declares 3758161918 value bytes")
deflated = ct_dataset()
deflated.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
deflated.save_as(p("d_deflated_length_huge.dcm"), enforce_file_format=True)
d = open(p("d_deflated_length_huge.dcm"), "rb").read()
start = 132 + 12 + struct.unpack("<I", d[140:144])[0]
inflated = zlib.decompress(d[start:], -15)
z = zlib.compressobj(9, zlib.DEFLATED, -15)
packed = z.compress(patch_length(inflated, b"\xe0\x7f\x10\x00OW", 0xE000FFFE)) + z.flush()
open(p("d_deflated_length_huge.dcm"), "wb").write(d[:start] + packed)
add_bad("d_deflated_length_huge", p("d_deflated_length_huge.dcm"), "dicom", "declares 3758161918 value bytes")
# And one after encapsulated pixel data, which dicom-object reads on past even for a header.
after = ct_dataset()
jpeg_ls_claim(after)
after.add_new(0x7FE10010, "OB", b"\0" * 8)
huge_length("d_length_after_fragments", after, b"\xe1\x7f\x10\x00OB")
# A deflated stream damaged after a huge length: dicom-object reads up to the damage.
early = ct_dataset()
early.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
early.add_new(0x00090010, "LO", "SCORERECON")
early.add_new(0x00091001, "OB", b"\0" * 8)
early.save_as(p("d_deflated_damaged.dcm"), enforce_file_format=True)
d = open(p("d_deflated_damaged.dcm"), "rb").read()
start = 132 + 12 + struct.unpack("<I", d[140:144])[0]
z = zlib.compressobj(9, zlib.DEFLATED, -15)
packed = z.compress(patch_length(zlib.decompress(d[start:], -15), b"\x09\x00\x01\x10OB", 0xE000FFFE)) + z.flush()
open(p("d_deflated_damaged.dcm"), "wb").write(d[:start] + packed[: len(packed) // 2] + b"\xff" * 64)
add_bad("d_deflated_damaged", p("d_deflated_damaged.dcm"), "dicom", "declares 3758161918 value bytes")
# A meta group length that spans the whole file, pixel data fragments included (this walk once
# looped on the fragments for ever).
d = open(p("d_length_after_fragments.dcm"), "rb").read()
open(p("d_meta_group_spans_fragments.dcm"), "wb").write(d[:140] + struct.pack("<I", 0x02000000 + struct.unpack("<I", d[140:144])[0]) + d[144:])
add_bad("d_meta_group_spans_fragments", p("d_meta_group_spans_fragments.dcm"), "dicom")
# A JPEG 2000 codestream larger than Rows x Columns (pydicom's 64 x 64 MR_small_jp2klossless.dcm
# told it is 32 x 32): dicom-rs wrote past its buffer and panicked (found by fuzzing).
j2k = pydicom.dcmread(pydicom.data.get_testdata_file("MR_small_jp2klossless.dcm"))
j2k.Rows, j2k.Columns = 32, 32
j2k.save_as(p("d_j2k_size.dcm"), enforce_file_format=True)
add_bad("d_j2k_size", p("d_j2k_size.dcm"), "dicom", "the codestream's image is 64 x 64", commands=("info", "convert", "ct"))
# Two more the dicom fuzz target found. dicom-object reads meta elements while the bytes read
# stay below the group length, so a group length 2 short still ends the group after its last
# element (the walk once started the data set 2 bytes early and lost the huge length after).
d = patch_length(raw, b"\xe0\x7f\x10\x00OW", 0xE000FFFE)
gl = struct.unpack("<I", d[140:144])[0]
open(p("d_meta_group_short.dcm"), "wb").write(d[:140] + struct.pack("<I", gl - 2) + d[144:])
add_bad("d_meta_group_short", p("d_meta_group_short.dcm"), "dicom", "declares 3758161918 value bytes")
# And a header read stops at the top-level Pixel Data only, not at an icon image's inside a
# sequence item (the walk once stopped there, before a huge length further on).
icon = ct_dataset()
item = pydicom.Dataset()
item.Rows, item.Columns, item.BitsAllocated, item.BitsStored, item.HighBit = 2, 2, 8, 8, 7
item.SamplesPerPixel, item.PixelRepresentation, item.PhotometricInterpretation = 1, 0, "MONOCHROME2"
item.PixelData = b"\0" * 4
icon.IconImageSequence = pydicom.Sequence([item])
icon.add_new(0x00990010, "LO", "SCORERECON")
icon.add_new(0x00991001, "OB", b"\0" * 8)
huge_length("d_length_after_icon", icon, b"\x99\x00\x01\x10OB")
# An odd-length US value: dicom-object reads it as whole u16s, a byte short of its length, and
# reads the next header from there (the walk once read the value raw, a byte further on, and
# missed the huge length in that header).
odd = ct_dataset()
odd.add_new(0x00990010, "LO", "SCORERECON")
odd.add_new(0x00991000, "US", [1, 2])
odd.add_new(0x00991001, "OB", b"\0" * 8)


def odd_us_length(d):
    us = d.index(b"\x99\x00\x00\x10US") + 6  # tag (4), VR (2), then the 2-byte length
    return d[:us] + struct.pack("<H", 5) + d[us + 2 :]


huge_length("d_odd_length_us", odd, b"\x99\x00\x01\x10OB", odd_us_length)
shutil.copy(pydicom.data.get_testdata_file("UN_sequence.dcm"), p("d_un_sequence.dcm"))
add_bad("d_un_sequence", p("d_un_sequence.dcm"), "dicom", "declares 3758161918 value bytes")
open(p("d_text.dcm"), "wb").write(b"hello, I am not DICOM\n" * 10)
add_bad("d_text", p("d_text.dcm"), "dicom", "not a DICOM file")
os.remove(good_dcm)

# Folders: empty, non-DICOM only, two slices at one position, slices of two sizes, one 0x0.
os.makedirs(p("f_empty"))
add_bad("f_empty", p("f_empty"), "folder", "empty")
os.makedirs(p("f_not_dicom"))
open(p("f_not_dicom/readme.txt"), "w").write("no images here\n")
add_bad("f_not_dicom", p("f_not_dicom"), "folder", "no DICOM images")
os.makedirs(p("f_same_position"))
for i in range(2):
    ds = ct_dataset()
    ds.InstanceNumber = i + 1
    ds.save_as(p(f"f_same_position/{i}.dcm"), enforce_file_format=True)
add_bad("f_same_position", p("f_same_position"), "folder", names=["f_same_position"])
os.makedirs(p("f_two_sizes"))
for i, n in enumerate([16, 8]):
    ds = ct_dataset(rows=n, cols=n)
    ds.ImagePositionPatient = [0, 0, i]
    ds.save_as(p(f"f_two_sizes/{i}.dcm"), enforce_file_format=True)
add_bad("f_two_sizes", p("f_two_sizes"), "folder", names=["f_two_sizes"])
os.makedirs(p("f_one_zero"))
for i in range(3):
    ds = ct_dataset()
    ds.ImagePositionPatient = [0, 0, i]
    if i == 1:
        ds.Rows = 0
    ds.save_as(p(f"f_one_zero/{i}.dcm"), enforce_file_format=True)
add_bad("f_one_zero", p("f_one_zero"), "folder", "Rows x Columns", names=["1.dcm"], commands=("info", "convert", "ct"))

# ---------------------------------------------------------------- NRRD


def bad_nrrd(name, header, data=b"", why=None, ext=".nrrd"):
    path = p(name + ext)
    open(path, "wb").write(header.encode() + data)
    add_bad(name, path, "nrrd", why)


ok_data = BASE.astype("<i2").tobytes()
head = "NRRD0004\ntype: short\ndimension: 3\nsizes: 8 8 4\nspacings: 1 1 2\nencoding: raw\nendian: little\n"
bad_nrrd("r_no_blank_line", head, b"")
bad_nrrd("r_sizes_zero", head.replace("sizes: 8 8 4", "sizes: 8 0 4") + "\n", ok_data)
bad_nrrd("r_type_unknown", head.replace("short", "quaternion") + "\n", ok_data)
bad_nrrd("r_dimension_7", head.replace("dimension: 3", "dimension: 7") + "\n", ok_data)
bad_nrrd("r_short_data", head + "\n", ok_data[:100])
bad_nrrd("r_bzip2", head.replace("encoding: raw", "encoding: bzip2") + "\n", ok_data)
bad_nrrd("r_sizes_huge", head.replace("sizes: 8 8 4", "sizes: 100000 100000 100000") + "\n", ok_data)
bad_nrrd("r_gzip_garbage", head.replace("encoding: raw", "encoding: gzip") + "\n", b"not gzip" * 50)
bad_nrrd("r_not_nrrd", "PNG\n", b"\0" * 64)
bad_nrrd("r_outside_file", head.replace("encoding: raw", "encoding: raw\ndata file: /etc/hostname"), b"", why=None, ext=".nhdr")
bad_nrrd("r_dotdot_file", head.replace("encoding: raw", "encoding: raw\ndata file: ../secret.raw"), b"", why=None, ext=".nhdr")
bad_nrrd("r_spacing_zero", head.replace("spacings: 1 1 2", "spacings: 1 0 2") + "\n", ok_data)
bad_nrrd("r_spacing_inf", head.replace("spacings: 1 1 2", "spacings: 1 inf 2") + "\n", ok_data)

# ---------------------------------------------------------------- measurement files


def bad_measurement(name, base, edit_meta=None, edit_files=None, why=None, task="ct"):
    folder = p(name)
    shutil.copytree(base, folder)
    sidecar = os.path.join(folder, "measurement.json")
    meta = json.load(open(sidecar))
    if edit_meta:
        edit_meta(meta)
    json.dump(meta, open(sidecar, "w"), indent=1)
    if edit_files:
        edit_files(folder)
    add_bad(name, sidecar, "measurement", why, names=[name], commands=(task,))


def setp(path, value):
    def f(meta):
        d = meta
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value

    return f


def rewrite_nifti(fname, fn):
    def f(folder):
        path = os.path.join(folder, fname)
        img = nib.load(path)
        arr = fn(np.asarray(img.dataobj))
        nib.save(nib.Nifti1Image(arr, img.affine, img.header), path)

    return f


bad_measurement("m_mask_all_zero", BASE_CT, edit_files=rewrite_nifti("measurement_mask.nii.gz", np.zeros_like), why="all zero")
bad_measurement("m_mask_twos", BASE_CT, edit_files=rewrite_nifti("measurement_mask.nii.gz", lambda a: a * 2), why="0 and 1")
bad_measurement("m_data_nan", BASE_CT, edit_files=rewrite_nifti("measurement.nii.gz", lambda a: a * np.nan), why="non-finite")
bad_measurement("m_photons_negative", BASE_CT, setp(["ct", "photons"], -5.0), why="photons")
bad_measurement("m_rows_out_of_range", BASE_CT, setp(["ct", "rows"], [0, 4, 999]), why="rows")
bad_measurement("m_rows_empty", BASE_CT, setp(["ct", "rows"], []), why="rows")
bad_measurement("m_views_zero", BASE_CT, setp(["ct", "geometry", "angles_deg"], []), why="views")
bad_measurement("m_task_views_1e12", BASE_CT, setp(["ct", "task", "views"], 10**12), why="views")
bad_measurement("m_image_size_huge", BASE_CT, setp(["ct", "geometry", "image_size"], 10**9), why="image_size")
bad_measurement("m_pixel_spacing_negative", BASE_CT, setp(["ct", "pixel_spacing_mm"], -1.0), why="pixel_spacing")
bad_measurement("m_pixel_size_zero", BASE_CT, setp(["ct", "geometry", "pixel_size"], 0.0), why="pixel size")
bad_measurement("m_shape_zero", BASE_CT, setp(["shape"], [0, 16, 46]), why="shape")
bad_measurement("m_shape_huge", BASE_CT, setp(["shape"], [10**6, 10**6, 10**6]), why="shape")
bad_measurement("m_shape_mismatch", BASE_CT, setp(["shape"], [1, 16, 40]), why="does not match the geometry")


def raw_data(drop):
    """The sinogram re-saved as raw little-endian float32 (C order over the shape), `drop` values short."""
    def f(meta):
        meta["data_file"] = "sino.raw"
    def g(folder):
        arr = np.asarray(nib.load(os.path.join(folder, "measurement.nii.gz")).dataobj, dtype="<f4")
        flat = arr.reshape(arr.shape[:2] + (-1,)).transpose(2, 1, 0).ravel()
        flat[: flat.size - drop].tofile(os.path.join(folder, "sino.raw"))
    return f, g


_f, _g = raw_data(1)
bad_measurement("m_raw_one_float_short", BASE_CT, _f, edit_files=_g, why="need exactly")
bad_measurement("m_nrrd_named_raw", BASE_CT, setp(["mask_file"], "measurement.nrrd"), edit_files=lambda f: shutil.copy(os.path.join(f, "measurement_mask.nii.gz"), os.path.join(f, "measurement.nrrd")), why="header line 1")
bad_measurement("m_slices_mismatch", BASE_CT, setp(["slices"], [0, 1, 2]), why="slices")
bad_measurement("m_format_tag", BASE_CT, setp(["format"], "something-else"), why="format")
bad_measurement("m_version_99", BASE_CT, setp(["version"], 99), why="version")
bad_measurement("m_complex_ct", BASE_CT, setp(["complex"], True), why="complex")
bad_measurement("m_data_etc_hostname", BASE_CT, setp(["data_file"], "/etc/hostname"), why="inside the measurement")
bad_measurement("m_data_dotdot", BASE_CT, setp(["data_file"], "../m_mask_all_zero/measurement.nii.gz"), why="inside the measurement")
bad_measurement("m_data_missing", BASE_CT, edit_files=lambda f: os.remove(os.path.join(f, "measurement.nii.gz")))


def link_out(folder):
    os.remove(os.path.join(folder, "measurement.nii.gz"))
    os.symlink(os.path.join(BASE_CT, "measurement.nii.gz"), os.path.join(folder, "measurement.nii.gz"))


bad_measurement("m_data_symlink_out", BASE_CT, edit_files=link_out, why="symbolic link")


def not_json(folder):
    open(os.path.join(folder, "measurement.json"), "w").write("{ this is not json")


bad_measurement("m_not_json", BASE_CT, edit_files=not_json, why="sidecar")
bad_measurement("m_acceleration_negative", BASE_MRI, setp(["mri", "acceleration"], -4.0), why="acceleration", task="mri")
bad_measurement("m_center_fraction_5", BASE_MRI, setp(["mri", "center_fraction"], 5.0), why="center_fraction", task="mri")
bad_measurement("m_mri_spacing_zero", BASE_MRI, setp(["mri", "pixel_spacing_mm"], [0.0, 1.0]), why="pixel_spacing", task="mri")
bad_measurement("m_mri_real", BASE_MRI, setp(["complex"], False), why="complex", task="mri")

# ---------------------------------------------------------------- legal oddities


def expect(name, path, arr):
    arr = np.asarray(arr, dtype=np.float32)
    while arr.ndim < 3:
        arr = arr[..., None]
    exp = p(name + ".expected.f32")
    arr.ravel(order="F").astype("<f4").tofile(exp)
    good.append({"name": name, "path": path, "expected": exp, "dims": list(arr.shape[:3])})


def padded(path, arr, offset):
    """A single-file NIfTI whose voxels start at `offset` (legal: vox_offset >= 352)."""
    img = nib.Nifti1Image(arr, np.eye(4))
    img.header["vox_offset"] = offset
    hdr = img.header.binaryblock
    data = arr.astype(img.header.get_data_dtype()).tobytes(order="F")
    with open(path, "wb") as f:
        f.write(hdr + b"\0" * (offset - len(hdr)) + data)


arr = rng.normal(100, 50, size=(8, 6, 3)).astype(np.float32)
padded(p("g_vox_offset_1024.nii"), arr, 1024)
expect("g_vox_offset_1024", p("g_vox_offset_1024.nii"), nib.load(p("g_vox_offset_1024.nii")).get_fdata())

be = nib.Nifti1Image(BASE, np.diag([0.8, 0.9, 2.5, 1]), nib.Nifti1Header(endianness=">"))
be.header.set_slope_inter(0.5, -10)
nib.save(be, p("g_big_endian_scaled.nii"))
assert nib.load(p("g_big_endian_scaled.nii")).header.endianness == ">"
expect("g_big_endian_scaled", p("g_big_endian_scaled.nii"), nib.load(p("g_big_endian_scaled.nii")).get_fdata())

u8 = nib.Nifti1Image(rng.integers(0, 255, size=(5, 7, 2)).astype(np.uint8), np.eye(4))
u8.header.set_slope_inter(3.0, 1.0)
nib.save(u8, p("g_uint8_scaled.nii.gz"))
expect("g_uint8_scaled", p("g_uint8_scaled.nii.gz"), nib.load(p("g_uint8_scaled.nii.gz")).get_fdata())

for name, slope, inter in [("g_slope_nan", np.nan, 3.0), ("g_slope_inf", np.inf, 0.0), ("g_slope_zero", 0.0, 5.0)]:
    data = nifti_bytes()
    patch(patch(data, "f", 112, slope), "f", 116, inter)
    open(p(name + ".nii"), "wb").write(bytes(data))
    expect(name, p(name + ".nii"), nib.load(p(name + ".nii")).get_fdata())

nib.save(nib.Nifti1Pair(BASE, np.eye(4)), p("g_pair.hdr"))
expect("g_pair", p("g_pair.hdr"), nib.load(p("g_pair.hdr")).get_fdata())

# DICOM: unsigned stored values with a fractional rescale, and an odd-length 8-bit image padded
# to even length: values as pydicom's apply_modality_lut gives them.
from pydicom.pixels import apply_modality_lut  # noqa: E402

ds = ct_dataset()
ds.PixelRepresentation = 0
ds.BitsStored = 12
ds.HighBit = 11
ds.PixelData = rng.integers(0, 4096, size=(16, 16)).astype("<u2").tobytes()
ds.RescaleSlope = "2.5"
ds.RescaleIntercept = "-1024.25"
ds.save_as(p("g_dicom_scaled.dcm"), enforce_file_format=True)
d = pydicom.dcmread(p("g_dicom_scaled.dcm"))
expect("g_dicom_scaled", p("g_dicom_scaled.dcm"), apply_modality_lut(d.pixel_array, d).T)

ds = ct_dataset(rows=15, cols=15, bits=8, pixels=rng.integers(0, 200, size=(15, 15)).astype(np.uint8).tobytes() + b"\0")
ds.PixelRepresentation = 0
ds.save_as(p("g_dicom_odd_padded.dcm"), enforce_file_format=True)
d = pydicom.dcmread(p("g_dicom_odd_padded.dcm"))
expect("g_dicom_odd_padded", p("g_dicom_odd_padded.dcm"), apply_modality_lut(d.pixel_array, d).T)

json.dump({"bad": bad, "good": good}, open(p("cases.json"), "w"), indent=1)
print(len(bad), len(good))
