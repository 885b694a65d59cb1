"""Compare two output trees of scripts/compare_outputs.sh: NIfTI bytes (decompressed), DICOM pixels and
geometry (UIDs and dates differ by design), measurement files byte for byte, metrics.json numbers (not seconds),
sweeps and notes. usage: .venv/bin/python scripts/compare_outputs.py BEFORE AFTER"""
import sys, os, gzip, json, hashlib
a, b = sys.argv[1], sys.argv[2]
def files(root):
    out = {}
    for d, _, fs in os.walk(root):
        for f in fs:
            p = os.path.join(d, f); out[os.path.relpath(p, root)] = p
    return out
fa, fb = files(a), files(b)
bad = 0; same = 0
for rel in sorted(set(fa) | set(fb)):
    if rel.endswith('log.txt') or rel.endswith('manifest.yaml'): continue
    if rel not in fa or rel not in fb:
        print("ONLY IN", "before" if rel in fa else "after", rel); bad += 1; continue
    pa, pb = fa[rel], fb[rel]
    if rel.endswith('metrics.json'):
        ja, jb = json.load(open(pa)), json.load(open(pb))
        for m in ja['methods']:
            for k, v in ja['methods'][m].items():
                if k == 'seconds': continue
                if jb['methods'].get(m, {}).get(k) != v:
                    print("DIFF", rel, m, k, v, jb['methods'].get(m, {}).get(k)); bad += 1
        if set(ja['methods']) != set(jb['methods']): print("DIFF methods", rel); bad += 1
        if ja.get('sweep') != jb.get('sweep'): print("DIFF sweep", rel); bad += 1
        if ja['notes'] != jb['notes']: print("NOTE", rel, [n for n in ja['notes'] if n not in jb['notes']], [n for n in jb['notes'] if n not in ja['notes']])
        same += 1; continue
    if rel.endswith('.html') or rel.endswith('.csv') or rel.endswith('.txt'):
        continue
    da, db = open(pa,'rb').read(), open(pb,'rb').read()
    if rel.endswith('.gz'):
        da, db = gzip.decompress(da), gzip.decompress(db)
    if rel.endswith('.dcm'):
        import pydicom  # UIDs and dates differ by design: compare the pixels and geometry
        x, y = pydicom.dcmread(pa), pydicom.dcmread(pb)
        keys = ['PixelData', 'RescaleSlope', 'RescaleIntercept', 'ImagePositionPatient', 'ImageOrientationPatient', 'PixelSpacing', 'Rows', 'Columns']
        if any(x.get(k) != y.get(k) for k in keys):
            print("DICOM DIFFERS", rel); bad += 1
        else: same += 1
        continue
    if da != db:
        print("BYTES DIFFER", rel); bad += 1
    else: same += 1
print(f"{same} identical, {bad} differences")
