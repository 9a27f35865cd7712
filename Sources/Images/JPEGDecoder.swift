import CTurboJPEG

/// JPEG → `RGBImage` through TurboJPEG (libjpeg-turbo), with PIL's semantics (see `RGBImage.decode`).
enum JPEGDecoder {
    /// The TurboJPEG flags: the accurate integer IDCT (islow) and fancy upsampling (no `TJFLAG_FASTUPSAMPLE`), as
    /// Pillow's decoder leaves libjpeg; at most 500 progressive scans.
    static let flags = TJFLAG_ACCURATEDCT | TJFLAG_LIMITSCANS

    /// libjpeg's `JWRN_JPEG_EOF` text: the source manager ran out of data before EOI and inserted a fake EOI.
    static let prematureEnd = "Premature end of JPEG file"

    static func decode(_ bytes: UnsafeRawBufferPointer, path: String, options: ImageDecodeOptions) throws -> RGBImage {
        let s: JPEGStructure
        do {
            s = try JPEGStructure.walk(bytes)
        } catch .truncated(let detail) {
            throw ImageFileError(path: path, .truncated(format: "JPEG", detail: detail))
        } catch .corrupt(let detail) {
            throw ImageFileError(path: path, .corrupt(format: "JPEG", detail: detail))
        }
        try RGBImage.checkDimensions(width: s.width, height: s.height, limit: options.maxPixels, path: path)
        guard s.components == 1 || s.components == 3 || s.components == 4 else {
            throw ImageFileError(path: path, .unsupported(
                format: "JPEG", detail: "\(s.components) colour components (1 gray, 3 YCbCr/RGB or 4 CMYK/YCCK are read)"))
        }
        guard s.reachedEOI else {
            throw ImageFileError(path: path, .truncated(
                format: "JPEG", detail: "the data ends before the EOI marker (image file is truncated)"))
        }
        guard let handle = tjInitDecompress() else {
            throw ImageFileError(path: path, .corrupt(format: "JPEG", detail: "TurboJPEG could not start a decoder"))
        }
        defer { tjDestroy(handle) }

        let pixelFormat = s.components == 4 ? TJPF_CMYK : TJPF_RGB
        let channels = s.components == 4 ? 4 : 3
        var out = [UInt8](repeating: 0, count: s.width * s.height * channels)
        // With explicit width, pitch and height TurboJPEG writes at most pitch × height bytes, whatever the file says.
        let rc = out.withUnsafeMutableBufferPointer { dst -> Int32 in
            guard let src = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), let d = dst.baseAddress else {
                return -1
            }
            return tjDecompress2(handle, src, UInt(bytes.count), d, Int32(s.width), Int32(s.width * channels),
                                 Int32(s.height), pixelFormat.rawValue, flags)
        }
        if rc != 0 {
            let message = tjGetErrorStr2(handle).map { String(cString: $0) } ?? "unknown TurboJPEG error"
            let isWarning = tjGetErrorCode(handle) == Int32(TJERR_WARNING.rawValue)
            if message.contains(prematureEnd) {
                throw ImageFileError(path: path, .truncated(format: "JPEG", detail: "libjpeg: \(message)"))
            }
            if !isWarning {
                throw ImageFileError(path: path, .corrupt(format: "JPEG", detail: "libjpeg: \(message)"))
            }
            // Other warnings (extraneous bytes, corrupt entropy data): PIL accepts these files, and so do we.
        }
        let image = channels == 4 ? cmykToRGB(out, width: s.width, height: s.height)
                                  : RGBImage(width: s.width, height: s.height, pixels: out)
        guard options.applyEXIFOrientation, let o = ExifOrientation.value(exif: s.exif, xmp: s.xmp) else {
            return image
        }
        return image.applyingEXIFOrientation(o)
    }

    /// libjpeg's CMYK output (as stored: Adobe files hold inverted values) → RGB as PIL: invert (`CMYK;I`), then
    /// Pillow's `cmyk2rgb`: k' = 255 − k, channel = clip(k' − MULDIV255(c, k')) with
    /// MULDIV255(a, b) = ((a·b + 128) >> 8 + a·b + 128) >> 8.
    static func cmykToRGB(_ cmyk: [UInt8], width: Int, height: Int) -> RGBImage {
        let n = width * height
        var rgb = [UInt8](repeating: 0, count: n * 3)
        cmyk.withUnsafeBufferPointer { src in
            rgb.withUnsafeMutableBufferPointer { dst in
                for i in 0..<n {
                    let nk = Int(src[4 * i + 3])   // 255 − (255 − k_raw): the inverted k, complemented
                    for c in 0..<3 {
                        let v = 255 - Int(src[4 * i + c])
                        let t = v * nk + 128
                        let m = ((t >> 8) + t) >> 8
                        dst[3 * i + c] = UInt8(clamping: nk - m)
                    }
                }
            }
        }
        return RGBImage(width: width, height: height, pixels: rgb)
    }
}
