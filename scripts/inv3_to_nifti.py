"""InVesalius stores its volume as raw little-endian int16 HU (main.plist gives the shape as z, y, x
and the spacing as x, y, z). Re-wrap it as NIfTI so the tool reads it like any other scan."""
import glob
import os
import plistlib
import sys

import nibabel as nib
import numpy as np

src, out = sys.argv[1], sys.argv[2]
d = os.path.dirname(glob.glob(os.path.join(src, "**", "main.plist"), recursive=True)[0])
with open(os.path.join(d, "main.plist"), "rb") as f:
    meta = plistlib.load(f)
shape = meta["matrix"]["shape"]
vol = np.fromfile(os.path.join(d, meta["matrix"]["filename"]), dtype="<i2").reshape(shape)
sx, sy, sz = meta["spacing"]
img = nib.Nifti1Image(np.ascontiguousarray(vol.transpose(2, 1, 0)), np.diag([sx, sy, sz, 1.0]))
img.header.set_xyzt_units("mm")
# "[CT] " tells scorerecon the modality (NIfTI has no field for it; docs/io.md).
img.header["descrip"] = b"[CT] InVesalius Cranium.inv3 (ProMED CT 0051), GPL-2"
img.set_qform(img.affine, code=1)
img.set_sform(img.affine, code=1)
nib.save(img, out)
