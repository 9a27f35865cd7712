import CSPNG

/// PNG → `RGBImage` through libspng, with PIL's semantics (see `RGBImage.decode`). libspng decodes to the file's own
/// sample format (`SPNG_FMT_PNG`: packed sub-byte samples, 16-bit samples in host order, Adam7 already
/// de-interlaced); the conversion to 8-bit RGB is done here, case by case as Pillow's `PngImagePlugin` modes and
/// `convert("RGB")` do it.
enum PNGDecoder {
    static func decode(_ bytes: UnsafeRawBufferPointer, path: String, options: ImageDecodeOptions) throws -> RGBImage {
        guard let ctx = spng_ctx_new(0) else {
            throw ImageFileError(path: path, .corrupt(format: "PNG", detail: "libspng could not start a decoder"))
        }
        defer { spng_ctx_free(ctx) }
        guard let base = bytes.baseAddress else { throw ImageFileError(path: path, .empty) }
        try check(spng_set_png_buffer(ctx, base, bytes.count), path)
        var ihdr = spng_ihdr()
        try check(spng_get_ihdr(ctx, &ihdr), path)
        let width = Int(ihdr.width), height = Int(ihdr.height)
        try RGBImage.checkDimensions(width: width, height: height, limit: options.maxPixels, path: path)
        let depth = Int(ihdr.bit_depth), colorType = Int(ihdr.color_type)
        let channels: Int
        switch colorType {
        case 0, 3: channels = 1
        case 2: channels = 3
        case 4: channels = 2
        case 6: channels = 4
        default:
            throw ImageFileError(path: path, .corrupt(format: "PNG", detail: "colour type \(colorType)"))
        }
        var palette = [UInt8](repeating: 0, count: 256 * 3)   // PIL 13: entries past PLTE's end are black
        if colorType == 3 {
            var plte = spng_plte()
            try check(spng_get_plte(ctx, &plte), path)
            withUnsafeBytes(of: &plte.entries) { raw in
                for i in 0..<min(Int(plte.n_entries), 256) {
                    palette[3 * i] = raw[4 * i]; palette[3 * i + 1] = raw[4 * i + 1]; palette[3 * i + 2] = raw[4 * i + 2]
                }
            }
        }
        let format = Int32(SPNG_FMT_PNG.rawValue)
        var size = 0
        try check(spng_decoded_image_size(ctx, format, &size), path)
        let rowBytes = (width * channels * depth + 7) / 8
        guard size == rowBytes * height else {
            throw ImageFileError(path: path, .corrupt(format: "PNG", detail: "unexpected decoded size \(size)"))
        }
        var raw = [UInt8](repeating: 0, count: size)
        try raw.withUnsafeMutableBytes { buf in
            try check(spng_decode_image(ctx, buf.baseAddress, buf.count, format, 0), path)
        }
        let rgb = convert(raw, width: width, height: height, rowBytes: rowBytes, colorType: colorType,
                          depth: depth, palette: palette)
        let image = RGBImage(width: width, height: height, pixels: rgb)
        guard options.applyEXIFOrientation else { return image }
        var exif = spng_exif()
        guard spng_get_exif(ctx, &exif) == 0, let data = exif.data, exif.length > 0 else { return image }
        let block = [UInt8](UnsafeRawBufferPointer(start: data, count: exif.length))
        guard let o = ExifOrientation.value(exif: block, xmp: nil) else { return image }
        return image.applyingEXIFOrientation(o)
    }

    /// Throws the `ImageFileError` for a libspng return code (0 is success): running out of data is `.truncated`.
    private static func check(_ rc: Int32, _ path: String) throws {
        guard rc != 0 else { return }
        let message = String(cString: spng_strerror(rc))
        switch rc {
        case Int32(SPNG_IO_EOF.rawValue), Int32(SPNG_EOF.rawValue), Int32(SPNG_EIDAT_TOO_SHORT.rawValue):
            throw ImageFileError(path: path, .truncated(format: "PNG", detail: "libspng: \(message)"))
        default:
            throw ImageFileError(path: path, .corrupt(format: "PNG", detail: "libspng: \(message)"))
        }
    }

    /// The file's samples (rows of `rowBytes`, big-endian sub-byte packing, 16-bit in host order) → RGB as PIL.
    static func convert(_ raw: [UInt8], width: Int, height: Int, rowBytes: Int, colorType: Int, depth: Int,
                        palette: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: width * height * 3)
        raw.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                guard let sbase = UnsafeRawPointer(src.baseAddress), src.count >= rowBytes * height else { return }
                for y in 0..<height {
                    let row = y * rowBytes
                    var d = y * width * 3
                    switch (colorType, depth) {
                    case (0, 8):
                        for x in 0..<width { let v = src[row + x]; dst[d] = v; dst[d + 1] = v; dst[d + 2] = v; d += 3 }
                    case (0, 16):
                        // PIL: mode I;16, convert("RGB") clips to 255 (host-order u16 from libspng).
                        let p = sbase + row
                        for x in 0..<width {
                            let v = UInt8(clamping: p.loadUnaligned(fromByteOffset: 2 * x, as: UInt16.self))
                            dst[d] = v; dst[d + 1] = v; dst[d + 2] = v; d += 3
                        }
                    case (0, _), (3, _):
                        let perByte = 8 / depth, mask = (1 << depth) - 1
                        let scale = depth == 1 ? 255 : depth == 2 ? 85 : depth == 4 ? 17 : 1
                        for x in 0..<width {
                            let byte = Int(src[row + x / perByte])
                            let v = (byte >> (8 - depth * (x % perByte + 1))) & mask
                            if colorType == 0 {
                                let g = UInt8(truncatingIfNeeded: v * scale)
                                dst[d] = g; dst[d + 1] = g; dst[d + 2] = g
                            } else {
                                dst[d] = palette[3 * v]; dst[d + 1] = palette[3 * v + 1]; dst[d + 2] = palette[3 * v + 2]
                            }
                            d += 3
                        }
                    case (2, 8):
                        for i in 0..<width * 3 { dst[d + i] = src[row + i] }
                    case (4, 8):
                        for x in 0..<width {
                            let v = src[row + 2 * x]; dst[d] = v; dst[d + 1] = v; dst[d + 2] = v; d += 3
                        }
                    case (6, 8):
                        for x in 0..<width {
                            dst[d] = src[row + 4 * x]; dst[d + 1] = src[row + 4 * x + 1]; dst[d + 2] = src[row + 4 * x + 2]
                            d += 3
                        }
                    default:
                        // 16-bit RGB (2), gray+alpha (4), RGBA (6): PIL's `;16B` unpackers keep the high byte.
                        let channels = colorType == 2 ? 3 : colorType == 4 ? 2 : 4
                        let p = sbase + row
                        for x in 0..<width {
                            func high(_ c: Int) -> UInt8 {
                                UInt8(truncatingIfNeeded: p.loadUnaligned(fromByteOffset: 2 * (channels * x + c),
                                                                          as: UInt16.self) >> 8)
                            }
                            if colorType == 4 {
                                let v = high(0); dst[d] = v; dst[d + 1] = v; dst[d + 2] = v
                            } else {
                                dst[d] = high(0); dst[d + 1] = high(1); dst[d + 2] = high(2)
                            }
                            d += 3
                        }
                    }
                }
            }
        }
        return out
    }
}
