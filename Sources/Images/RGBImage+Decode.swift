#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Settings of `RGBImage.decode`.
public struct ImageDecodeOptions: Equatable, Sendable {
    /// PIL's limit: `Image.open` raises `DecompressionBombError` above `2 * Image.MAX_IMAGE_PIXELS`
    /// = 2 × 89,478,485 = 178,956,970 pixels (Pillow 13's defaults). That is 537 MB as RGB.
    public static let pilMaxPixels = 178_956_970

    /// Apply the file's EXIF orientation as PIL's `ImageOps.exif_transpose(im).convert("RGB")` would (see
    /// `ExifOrientation`). Default false: PIL's `convert("RGB")`, Hugging Face's image processors and torchvision's
    /// loader ignore the orientation, and so does the default here.
    public var applyEXIFOrientation: Bool
    /// The largest `width × height` accepted; larger headers are refused with `.invalidDimensions` before any
    /// pixel buffer is allocated. Default `pilMaxPixels`.
    public var maxPixels: Int

    public init(applyEXIFOrientation: Bool = false, maxPixels: Int = ImageDecodeOptions.pilMaxPixels) {
        self.applyEXIFOrientation = applyEXIFOrientation
        self.maxPixels = maxPixels
    }
}

/// The file formats `RGBImage.decode` reads, recognised by their first bytes (never by the file name).
public enum ImageFileFormat: String, Sendable {
    /// Starts with `FF D8 FF` (SOI and the first byte of the next marker), as PIL's `JpegImagePlugin._accept`.
    case jpeg = "JPEG"
    /// Starts with the 8-byte PNG signature `89 50 4E 47 0D 0A 1A 0A`.
    case png = "PNG"

    public static func detect(_ bytes: UnsafeRawBufferPointer) -> ImageFileFormat? {
        if bytes.count >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF { return .jpeg }
        let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        if bytes.count >= 8 && zip(bytes, signature).allSatisfy({ $0 == $1 }) { return .png }
        return nil
    }
}

extension RGBImage {
    /// Decodes a JPEG or PNG file held in memory into 8-bit RGB exactly as Pillow 13's
    /// `Image.open(f).convert("RGB")` does (`path` only names the data in errors). Per source kind:
    ///
    /// - JPEG (libjpeg-turbo's TurboJPEG API, islow IDCT, fancy upsampling: Pillow's libjpeg settings):
    ///   YCbCr / RGB → RGB as libjpeg converts it; grayscale → the gray value in all three channels; CMYK and YCCK
    ///   (4 components) → libjpeg's CMYK, inverted as PIL always does (`CMYK;I`, Adobe polarity, whether or not
    ///   an Adobe marker is present), then PIL's `cmyk2rgb`: with k' = 255 − k,
    ///   `R = clip(k' − (c·k' + 128 + ((c·k' + 128) >> 8)) >> 8)` for c the inverted cyan, likewise G, B.
    ///   Progressive and arithmetic-coded files are read; more than 500 scans are refused (TurboJPEG's
    ///   `TJFLAG_LIMITSCANS`, a guard against denial of service that PIL does not have). Files whose data ends
    ///   before the EOI marker are `.truncated` (PIL: `OSError: image file is truncated`); other libjpeg warnings
    ///   (extraneous bytes, corrupt entropy data) are tolerated, as in PIL.
    /// - PNG (libspng, no gamma, no transparency applied): gray 1-bit → 0 / 255; gray 2- and 4-bit → v·85, v·17;
    ///   gray 8-bit → v; gray 16-bit → min(v, 255) in every channel (PIL opens it as mode `I;16` and its
    ///   `I;16 → RGB` conversion clips; it does not scale); RGB 16-bit, gray+alpha 16-bit and RGBA 16-bit → the high
    ///   byte (v >> 8) of each sample; alpha (RGBA, LA, tRNS) is dropped without compositing; palette (1/2/4/8-bit,
    ///   with or without tRNS) → the PLTE colour, (0, 0, 0) for an index past the palette's end (as PIL 13).
    ///
    /// EXIF orientation is ignored unless `options.applyEXIFOrientation` (JPEG: APP1 `Exif` segments, then an XMP
    /// `tiff:Orientation`; PNG: the `eXIf` chunk). Throws `ImageFileError` naming `path` for an empty or
    /// unrecognised file, truncated or corrupt data, dimensions over `options.maxPixels`, or an unsupported kind.
    public static func decode(_ bytes: UnsafeRawBufferPointer, path: String,
                              options: ImageDecodeOptions = ImageDecodeOptions()) throws -> RGBImage {
        guard bytes.count > 0 else { throw ImageFileError(path: path, .empty) }
        switch ImageFileFormat.detect(bytes) {
        case .jpeg:
            return try JPEGDecoder.decode(bytes, path: path, options: options)
        case .png:
            return try PNGDecoder.decode(bytes, path: path, options: options)
        case nil:
            throw ImageFileError(path: path, .unknownFormat(leadingBytes: Array(bytes.prefix(8))))
        }
    }

    /// `decode(_:path:options:)` over an array of file bytes.
    public static func decode(_ bytes: [UInt8], path: String,
                              options: ImageDecodeOptions = ImageDecodeOptions()) throws -> RGBImage {
        try bytes.withUnsafeBytes { try decode($0, path: path, options: options) }
    }

    /// Reads the file at `path` whole and decodes it (see `decode(_:path:options:)`).
    public static func decode(path: String, options: ImageDecodeOptions = ImageDecodeOptions()) throws -> RGBImage {
        try decode(try readImageFile(path), path: path, options: options)
    }

    /// Refuses `width × height` outside 1…`limit` (computed without overflow).
    static func checkDimensions(width: Int, height: Int, limit: Int, path: String) throws {
        let (product, overflow) = width.multipliedReportingOverflow(by: height)
        guard width >= 1, height >= 1, !overflow, product <= limit else {
            throw ImageFileError(path: path, .invalidDimensions(width: width, height: height, limit: limit))
        }
    }
}

/// The whole content of the file at `path`.
func readImageFile(_ path: String) throws -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw ImageFileError(path: path, .unreadable(reason: String(cString: strerror(errno)))) }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0 else {
        throw ImageFileError(path: path, .unreadable(reason: String(cString: strerror(errno))))
    }
    guard (st.st_mode & S_IFMT) != S_IFDIR else { throw ImageFileError(path: path, .unreadable(reason: "is a directory")) }
    var bytes = [UInt8](repeating: 0, count: max(Int(st.st_size), 0) + 1)
    var count = 0
    while true {
        if count == bytes.count { bytes.append(contentsOf: repeatElement(0, count: max(bytes.count, 65536))) }
        let n = bytes.withUnsafeMutableBytes { buf -> Int in
            guard let base = buf.baseAddress else { return 0 }
            return read(fd, base + count, buf.count - count)
        }
        if n < 0 {
            if errno == EINTR { continue }
            throw ImageFileError(path: path, .unreadable(reason: String(cString: strerror(errno))))
        }
        if n == 0 { break }
        count += n
    }
    bytes.removeSubrange(count...)
    return bytes
}
