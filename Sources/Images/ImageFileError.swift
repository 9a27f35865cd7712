/// Every failure of the image decoders. `path` is the file at fault (or the name the caller gave to bytes held in
/// memory); the description always starts with `"<path>: "` and says what is wrong with the file.
public struct ImageFileError: Error, Equatable, Sendable, CustomStringConvertible {
    public var path: String
    public var kind: Kind

    public init(path: String, _ kind: Kind) {
        self.path = path
        self.kind = kind
    }

    public enum Kind: Equatable, Sendable {
        /// The file could not be opened or read (`reason` is the system's message).
        case unreadable(reason: String)
        /// The file has no bytes at all.
        case empty
        /// The first bytes are neither a JPEG (`FF D8 FF`) nor a PNG signature, whatever the file's extension.
        /// `leadingBytes` are the first (up to 8) bytes of the file.
        case unknownFormat(leadingBytes: [UInt8])
        /// The file ends before the image does (`format` "JPEG" or "PNG"; `detail` says where), as PIL's
        /// `OSError: image file is truncated`.
        case truncated(format: String, detail: String)
        /// The data is malformed (`detail` is the decoder's message or what the structure check found).
        case corrupt(format: String, detail: String)
        /// The header declares `width × height` pixels, more than the `limit` of `ImageDecodeOptions.maxPixels`
        /// (or a side of 0). Raised before any pixel buffer is allocated.
        case invalidDimensions(width: Int, height: Int, limit: Int)
        /// A well-formed file of a kind this decoder does not handle (e.g. a 2-component JPEG, which PIL refuses too).
        case unsupported(format: String, detail: String)
    }

    public var description: String {
        let message: String
        switch kind {
        case .unreadable(let reason):
            message = "cannot read: \(reason)"
        case .empty:
            message = "empty file (0 bytes), not an image"
        case .unknownFormat(let bytes):
            let hex = bytes.map { String($0, radix: 16, uppercase: true).leftPadded(to: 2) }.joined(separator: " ")
            message = "not a JPEG or PNG file (the format is recognised by its first bytes, not by the file name)"
                + "; first bytes: \(hex.isEmpty ? "none" : hex)"
        case .truncated(let format, let detail):
            message = "truncated \(format) file: \(detail)"
        case .corrupt(let format, let detail):
            message = "corrupt \(format) file: \(detail)"
        case .invalidDimensions(let width, let height, let limit):
            message = "image dimensions \(width)×\(height) refused: each side must be ≥ 1 and width × height at most"
                + " \(limit) pixels (ImageDecodeOptions.maxPixels)"
        case .unsupported(let format, let detail):
            message = "unsupported \(format) file: \(detail)"
        }
        return "\(path): \(message)"
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
