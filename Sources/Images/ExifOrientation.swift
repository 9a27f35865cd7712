/// The EXIF orientation (TIFF tag 0x0112) and the transposition PIL's `ImageOps.exif_transpose` applies for it.
///
/// Values 2…8 map to PIL's `Image.Transpose` methods: 2 FLIP_LEFT_RIGHT, 3 ROTATE_180, 4 FLIP_TOP_BOTTOM,
/// 5 TRANSPOSE, 6 ROTATE_270 (90° clockwise), 7 TRANSVERSE, 8 ROTATE_90 (90° counter-clockwise); 1, a missing tag
/// and any other value leave the image as it is (PIL's `exif_transpose` does the same for values outside 2…8).
public enum ExifOrientation {
    /// Orientation from an EXIF block as PIL's `Image.getexif()` reads it.
    ///
    /// `exif`: the TIFF structure (a leading `Exif\0\0`, once or twice, is skipped as PIL does): byte order `II*\0`
    /// or `MM\0*`, the IFD0 offset (u32), IFD0's u16 entry count and 12-byte entries. The first entry with tag
    /// 0x0112 of type SHORT (3), LONG (4), SSHORT (8) or SLONG (9) and count 1 gives the value (stored in the
    /// entry itself); other types or counts give nil (PIL reads a BYTE value as `bytes`, which matches no method).
    /// `xmp`: used only when the EXIF block has no such entry, as PIL does: the first match of
    /// `tiff:Orientation="D` or `tiff:Orientation>D` (D one decimal digit) anywhere in the packet.
    /// Returns nil when neither holds an orientation. Malformed EXIF (a wrong byte-order mark, offsets past the
    /// end) yields nil for the EXIF part; PIL 13 raises `SyntaxError` from `exif_transpose` on a wrong byte-order
    /// mark instead of ignoring it.
    public static func value(exif: [UInt8]?, xmp: [UInt8]?) -> Int? {
        if let exif, let v = fromTIFF(exif) { return v }
        if let xmp { return fromXMP(xmp) }
        return nil
    }

    static func fromTIFF(_ data: [UInt8]) -> Int? {
        var start = 0
        let prefix = JPEGStructure.exifPrefix
        for _ in 0..<2 where data.count - start >= prefix.count && Array(data[start..<start + prefix.count]) == prefix {
            start += prefix.count
        }
        guard data.count - start >= 8 else { return nil }
        let little: Bool
        switch (data[start], data[start + 1], data[start + 2], data[start + 3]) {
        case (0x49, 0x49, 0x2A, 0x00): little = true
        case (0x4D, 0x4D, 0x00, 0x2A): little = false
        default: return nil
        }
        func u16(_ o: Int) -> Int? {
            guard o >= 0, o + 2 <= data.count - start else { return nil }
            let a = Int(data[start + o]), b = Int(data[start + o + 1])
            return little ? a | b << 8 : a << 8 | b
        }
        func u32(_ o: Int) -> Int? {
            guard let lo = u16(little ? o : o + 2), let hi = u16(little ? o + 2 : o) else { return nil }
            return hi << 16 | lo
        }
        guard let ifd = u32(4), let count = u16(ifd) else { return nil }
        for i in 0..<count {
            let e = ifd + 2 + 12 * i
            guard let tag = u16(e), let type = u16(e + 2), let n = u32(e + 4) else { return nil }
            guard tag == 0x0112 else { continue }
            // PIL keeps the first entry of a tag and skips later duplicates.
            guard n == 1 else { return nil }
            switch type {
            case 3: return u16(e + 8)
            case 8: return u16(e + 8).map { Int(Int16(truncatingIfNeeded: $0)) }
            case 4: return u32(e + 8)
            case 9: return u32(e + 8).map { Int(Int32(truncatingIfNeeded: $0)) }
            default: return nil
            }
        }
        return nil
    }

    static func fromXMP(_ xmp: [UInt8]) -> Int? {
        let key = Array("tiff:Orientation".utf8)
        guard xmp.count >= key.count + 2 else { return nil }
        var i = 0
        while i + key.count < xmp.count {
            if xmp[i] == key[0] && Array(xmp[i..<i + key.count]) == key {
                var j = i + key.count
                if xmp[j] == UInt8(ascii: "=") && j + 1 < xmp.count && xmp[j + 1] == UInt8(ascii: "\"") {
                    j += 2
                } else if xmp[j] == UInt8(ascii: ">") {
                    j += 1
                } else {
                    i += 1; continue
                }
                if j < xmp.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(xmp[j]) {
                    return Int(xmp[j] - UInt8(ascii: "0"))
                }
            }
            i += 1
        }
        return nil
    }
}

extension RGBImage {
    /// The image transposed as PIL's `ImageOps.exif_transpose` does for EXIF orientation `orientation`
    /// (see `ExifOrientation`); orientations 5–8 swap width and height. Other values return the image unchanged.
    public func applyingEXIFOrientation(_ orientation: Int) -> RGBImage {
        guard (2...8).contains(orientation) else { return self }
        let w = width, h = height
        let swaps = orientation >= 5
        let ow = swaps ? h : w, oh = swaps ? w : h
        var out = [UInt8](repeating: 0, count: pixels.count)
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for y in 0..<oh {
                    for x in 0..<ow {
                        // (sx, sy): the source pixel that lands at (x, y).
                        let sx: Int, sy: Int
                        switch orientation {
                        case 2: (sx, sy) = (w - 1 - x, y)              // FLIP_LEFT_RIGHT
                        case 3: (sx, sy) = (w - 1 - x, h - 1 - y)      // ROTATE_180
                        case 4: (sx, sy) = (x, h - 1 - y)              // FLIP_TOP_BOTTOM
                        case 5: (sx, sy) = (y, x)                      // TRANSPOSE
                        case 6: (sx, sy) = (y, h - 1 - x)              // ROTATE_270 (clockwise)
                        case 7: (sx, sy) = (w - 1 - y, h - 1 - x)      // TRANSVERSE
                        default: (sx, sy) = (w - 1 - y, x)             // 8: ROTATE_90 (counter-clockwise)
                        }
                        let s = (sy * w + sx) * 3, d = (y * ow + x) * 3
                        dst[d] = src[s]; dst[d + 1] = src[s + 1]; dst[d + 2] = src[s + 2]
                    }
                }
            }
        }
        return RGBImage(width: ow, height: oh, pixels: out)
    }
}
