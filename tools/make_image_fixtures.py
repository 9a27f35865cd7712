#!/usr/bin/env python3
"""Writes the image-decoding fixtures Tests/Fixtures/images/ and PIL's decoded pixels for them.

    python3 -m venv .venv-img && .venv-img/bin/pip install pillow==13.0.0 numpy safetensors
    .venv-img/bin/python tools/make_image_fixtures.py

Deterministic (fixed seeds; PIL 13.0.0 with its bundled libjpeg-turbo 3.x writes the JPEGs, a small writer
below crafts the PNG cases PIL cannot write: 2/4-bit gray, 16-bit gray+alpha and RGBA, Adam7 interlacing,
a palette shorter than the indices used, eXIf, a missing IEND).

expected.safetensors holds, for every good file NAME (the file name with its extension), a U8 [H, W, 3] tensor
NAME = np.asarray(Image.open(f).convert("RGB")), and for the files with an EXIF or XMP orientation also
"NAME#exif_transpose" = np.asarray(ImageOps.exif_transpose(Image.open(f)).convert("RGB")).
Its metadata: "broken" = the comma-separated names of the files PIL refuses (each checked here to raise),
"pillow" = the Pillow version, "libjpeg_turbo" = the libjpeg-turbo version PIL was built with.
"""
import io
import os
import struct
import zlib

import numpy as np
from PIL import Image, ImageOps, features
from safetensors.numpy import save_file

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Tests", "Fixtures", "images")
rng = np.random.default_rng(2026)


def photo(h, w, channels=3):
    """A smooth, photo-like test pattern (gradients, a disc, mild noise) so JPEG exercises every DCT path."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    planes = []
    for c in range(channels):
        v = 128 + 90 * np.sin(x / (3.0 + c) + c) * np.cos(y / (4.0 + 2 * c))
        v += 60 * (((x - w / 2) ** 2 + (y - h / 2) ** 2) < (min(h, w) / 3) ** 2)
        v += rng.normal(0, 12, (h, w))
        planes.append(v)
    return np.clip(np.stack(planes, -1), 0, 255).astype(np.uint8)


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(width, height, bit_depth, color_type, rows, before_idat=b"", interlace=0, iend=True):
    """rows: one bytes object per scanline (packed samples, big-endian 16-bit), or for interlace=1 the full
    image as a list of per-pixel sample lists handled by adam7()."""
    raw = b"".join(b"\x00" + r for r in rows)
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, interlace)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + before_idat + chunk(b"IDAT", zlib.compress(raw, 9))
    return data + (chunk(b"IEND", b"") if iend else b"")


def adam7_rows(img):
    """The filtered-free scanlines of an Adam7-interlaced 8-bit image img [H, W, C] (passes in order)."""
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    rows = []
    for x0, y0, dx, dy in passes:
        sub = img[y0::dy, x0::dx]
        if sub.shape[0] and sub.shape[1]:
            rows.extend(r.tobytes() for r in sub)
    return rows


def pack_bits(values, bits):
    out, acc, n = bytearray(), 0, 0
    for v in values:
        acc = (acc << bits) | int(v)
        n += bits
        if n == 8:
            out.append(acc); acc, n = 0, 0
    if n:
        out.append(acc << (8 - n))
    return bytes(out)


def exif_block(orientation, big_endian=False):
    """A minimal TIFF/EXIF block: IFD0 with Orientation (0x0112, SHORT, 1) and ImageDescription."""
    e = ">" if big_endian else "<"
    head = (b"MM\x00*" if big_endian else b"II*\x00") + struct.pack(e + "I", 8)
    desc = b"selora fixture\x00"
    entries = [struct.pack(e + "HHI", 0x010E, 2, len(desc)) + struct.pack(e + "I", 8 + 2 + 2 * 12 + 4),
               struct.pack(e + "HHIH", 0x0112, 3, 1, orientation) + b"\x00\x00"]
    return head + struct.pack(e + "H", len(entries)) + b"".join(entries) + struct.pack(e + "I", 0) + desc


def jpeg(img, **kw):
    b = io.BytesIO()
    Image.fromarray(img).save(b, "JPEG", **kw)
    return b.getvalue()


def insert_app(jpg, marker, payload):
    """jpg with an APPn segment inserted right after SOI (before PIL's JFIF APP0)."""
    return jpg[:2] + bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload + jpg[2:]


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    files, exif_files, broken = {}, set(), {}

    # --- JPEG --------------------------------------------------------------------------------------------
    rgb = photo(23, 37)
    files["jpeg_rgb_420_37x23.jpg"] = jpeg(rgb, quality=90)                       # baseline, 4:2:0 (default)
    files["jpeg_rgb_444_37x23.jpg"] = jpeg(rgb, quality=95, subsampling=0)
    files["jpeg_rgb_422_37x23.jpg"] = jpeg(rgb, quality=85, subsampling=1)
    files["jpeg_progressive_45x31.jpg"] = jpeg(photo(31, 45), quality=88, progressive=True)
    files["jpeg_restart_40x40.jpg"] = jpeg(photo(40, 40), quality=80, restart_marker_blocks=2)
    files["jpeg_portrait_gray_29x41.jpg"] = jpeg(photo(41, 29, 1)[:, :, 0], quality=90)
    cmyk = Image.fromarray(photo(21, 33)).convert("CMYK")
    b = io.BytesIO(); cmyk.save(b, "JPEG", quality=92); files["jpeg_cmyk_33x21.jpg"] = b.getvalue()
    base = jpeg(photo(18, 30), quality=90)
    for o in range(1, 9):
        name = f"jpeg_exif{o}_30x18.jpg"
        files[name] = insert_app(base, 0xE1, b"Exif\x00\x00" + exif_block(o, big_endian=(o % 2 == 0)))
        exif_files.add(name)
    xmp = (b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF><rdf:Description "
           b"xmlns:tiff='http://ns.adobe.com/tiff/1.0/' tiff:Orientation=\"8\"/></rdf:RDF></x:xmpmeta>")
    files["jpeg_xmp8_30x18.jpg"] = insert_app(base, 0xE1, xmp)
    exif_files.add("jpeg_xmp8_30x18.jpg")

    # --- PNG -----------------------------------------------------------------------------------------------
    def save_png(arr, mode=None, **kw):
        b = io.BytesIO()
        (arr if isinstance(arr, Image.Image) else Image.fromarray(arr, mode) if mode else Image.fromarray(arr)).save(
            b, "PNG", **kw)
        return b.getvalue()

    files["png_gray8_30x20.png"] = save_png(photo(20, 30, 1)[:, :, 0])
    g16 = (np.linspace(0, 65535, 24 * 16).reshape(16, 24)).astype(np.uint16)
    g16[0, :8] = [0, 1, 2, 254, 255, 256, 257, 1000]                          # around PIL's clip at 255
    files["png_gray16_24x16.png"] = save_png(g16)
    files["png_rgb8_portrait_19x33.png"] = save_png(photo(33, 19))
    files["png_rgba8_25x17.png"] = save_png(np.dstack([photo(17, 25), photo(17, 25, 1)]), "RGBA")
    files["png_la8_21x13.png"] = save_png(np.dstack([photo(13, 21, 1), photo(13, 21, 1)]), "LA")
    pal = Image.fromarray(photo(15, 27)).quantize(colors=37, method=Image.Quantize.MEDIANCUT)
    files["png_palette_27x15.png"] = save_png(pal)
    palt = pal.copy(); palt.info["transparency"] = bytes(range(0, 255, 7))[:37]
    files["png_palette_trns_27x15.png"] = save_png(palt, transparency=bytes(range(0, 255, 7))[:37])
    p4 = Image.fromarray(photo(15, 27)).quantize(colors=12)
    files["png_palette4bit_27x15.png"] = save_png(p4, bits=4)
    rgb16 = rng.integers(0, 65536, (14, 22, 3)).astype(">u2")
    files["png_rgb16_22x14.png"] = png(22, 14, 16, 2, [r.tobytes() for r in rgb16])
    rgba16 = rng.integers(0, 65536, (9, 11, 4)).astype(">u2")
    files["png_rgba16_11x9.png"] = png(11, 9, 16, 6, [r.tobytes() for r in rgba16])
    la16 = rng.integers(0, 65536, (9, 11, 2)).astype(">u2")
    files["png_la16_11x9.png"] = png(11, 9, 16, 4, [r.tobytes() for r in la16])
    bw = photo(12, 19, 1)[:, :, 0] > 128
    files["png_gray1_19x12.png"] = save_png(Image.fromarray(bw))
    for bits in (2, 4):
        vals = rng.integers(0, 1 << bits, (12, 19))
        files[f"png_gray{bits}_19x12.png"] = png(19, 12, bits, 0, [pack_bits(r, bits) for r in vals])
    g8t = photo(10, 16, 1)[:, :, 0]
    files["png_gray8_trns_16x10.png"] = png(16, 10, 8, 0, [r.tobytes() for r in g8t],
                                            chunk(b"tRNS", struct.pack(">H", int(g8t[0, 0]))))
    files["png_rgb8_adam7_29x19.png"] = png(29, 19, 8, 2, adam7_rows(photo(19, 29)), interlace=1)
    files["png_palette_short_6x1.png"] = png(6, 1, 8, 3, [bytes([0, 1, 2, 3, 200, 255])],
                                             chunk(b"PLTE", bytes([10, 20, 30, 40, 50, 60])))
    files["png_exif6_20x12.png"] = png(20, 12, 8, 2, [r.tobytes() for r in photo(12, 20)],
                                       chunk(b"eXIf", exif_block(6)))
    exif_files.add("png_exif6_20x12.png")
    files["png_no_iend_16x8.png"] = png(16, 8, 8, 2, [r.tobytes() for r in photo(8, 16)], iend=False)

    # --- broken ---------------------------------------------------------------------------------------------
    j = files["jpeg_rgb_420_37x23.jpg"]
    broken["broken_truncated_half.jpg"] = j[: len(j) // 2]
    broken["broken_no_eoi.jpg"] = j[:-2]
    broken["broken_header_only.jpg"] = j[:200]
    p = files["png_rgb8_portrait_19x33.png"]
    idat = p.index(b"IDAT")
    broken["broken_truncated.png"] = p[: idat + 4 + (len(p) - idat) // 2]
    bad = bytearray(files["png_gray8_30x20.png"]); bad[29] ^= 0x55                    # IHDR CRC
    broken["broken_bad_crc.png"] = bytes(bad)
    broken["broken_zero_bytes.jpg"] = b""
    broken["broken_text.jpg"] = b"this is not an image, whatever its name says\n"
    broken["broken_huge_100000x100000.png"] = png(100000, 100000, 8, 0, [b"\x00" * 4])
    sof = j.index(b"\xff\xc0")
    broken["broken_huge_60000x60000.jpg"] = j[: sof + 5] + struct.pack(">HH", 60000, 60000) + j[sof + 9:]

    expected = {}
    for name, data in files.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        im = Image.open(os.path.join(OUT, name))
        expected[name] = np.ascontiguousarray(np.asarray(im.convert("RGB")))
        if name in exif_files:
            t = ImageOps.exif_transpose(Image.open(os.path.join(OUT, name)))
            expected[name + "#exif_transpose"] = np.ascontiguousarray(np.asarray(t.convert("RGB")))
    for name, data in broken.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        try:
            Image.open(os.path.join(OUT, name)).convert("RGB")
        except Exception as e:  # noqa: BLE001 - any refusal is what we want
            print(f"{name}: PIL refuses: {type(e).__name__}: {e}")
        else:
            raise SystemExit(f"{name}: PIL decodes it; it is not a broken file")
    save_file(expected, os.path.join(OUT, "expected.safetensors"),
              metadata={"broken": ",".join(sorted(broken)), "pillow": Image.__version__,
                        "libjpeg_turbo": str(features.version("libjpeg_turbo"))})
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"{len(files)} good files, {len(broken)} broken, {total} bytes in {OUT}")


if __name__ == "__main__":
    main()
