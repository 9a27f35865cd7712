import Foundation

/// Every failure of the dataset loaders. `path` is the file at fault; the description always starts with it
/// and says what was expected and what was found, with a line (CSV) or byte offset (IDX) where one applies.
/// IDX byte offsets count bytes of the *decompressed* stream when the file is gzip-compressed.
public struct DatasetError: Error, Equatable, CustomStringConvertible, LocalizedError {
    public var path: String
    public var kind: Kind

    public init(path: String, _ kind: Kind) {
        self.path = path
        self.kind = kind
    }

    public enum Kind: Equatable, Sendable {
        /// The file could not be opened or read (`reason` is the system's message).
        case unreadable(reason: String)
        /// zlib reported a corrupt or truncated gzip stream (`reason` is zlib's message).
        case gzip(reason: String)
        /// The IDX magic number (first 4 bytes, big-endian) is wrong.
        case wrongMagic(expected: UInt32, found: UInt32)
        /// The IDX header says rows or columns is 0, or count × rows × columns overflows.
        case invalidDimensions(count: Int, rows: Int, columns: Int)
        /// The file ends before the bytes the header promises: `expectedBytes` were needed (header included,
        /// for the items being read), only `foundBytes` exist. `what` names the item ("image 17", "label 3", "header").
        case truncated(what: String, expectedBytes: Int, foundBytes: Int)
        /// The file has bytes after the `expectedBytes` its header promises.
        case trailingData(expectedBytes: Int)
        /// The images file and the labels file (`otherPath`) hold different numbers of items.
        case countMismatch(count: Int, otherPath: String, otherCount: Int)
        /// Item `index` (0-based) has a label outside `0 ..< numClasses`. `location` is
        /// "byte offset N" (IDX) or "line N" (CSV).
        case labelOutOfRange(index: Int, location: String, label: Int, numClasses: Int)
        /// A CSV line (1-based) has the wrong number of comma-separated fields.
        case wrongFieldCount(line: Int, expected: Int, found: Int)
        /// A CSV field (line and column 1-based) is not an integer.
        case notAnInteger(line: Int, column: Int, text: String)
        /// A CSV pixel (line and column 1-based) is outside `0 ... maxValue`.
        case pixelOutOfRange(line: Int, column: Int, value: String, maxValue: Int)
        /// The CSV file has no data line.
        case empty
        /// A parameter of the loader is invalid (the file is then not read).
        case invalidArgument(String)
    }

    public var errorDescription: String? { description }

    public var description: String {
        let message: String
        switch kind {
        case .unreadable(let reason):
            message = "cannot read: \(reason)"
        case .gzip(let reason):
            message = "corrupt gzip data: \(reason)"
        case .wrongMagic(let expected, let found):
            message = "wrong IDX magic number: expected \(DatasetError.hex(expected)) (\(DatasetError.magicName(expected)))"
                + ", found \(DatasetError.hex(found)) (\(DatasetError.magicName(found)))"
        case .invalidDimensions(let count, let rows, let columns):
            message = "invalid IDX dimensions: \(count) images of \(rows)×\(columns); expected rows, columns >= 1"
                + " and count × rows × columns to fit in an Int"
        case .truncated(let what, let expected, let found):
            message = "truncated: \(what) needs the file to hold at least \(expected) bytes, but it ends after \(found) bytes"
        case .trailingData(let expected):
            message = "the header promises exactly \(expected) bytes, but the file is longer"
        case .countMismatch(let count, let otherPath, let otherCount):
            message = "holds \(count) items but \(otherPath) holds \(otherCount); expected the same number"
        case .labelOutOfRange(let index, let location, let label, let numClasses):
            message = "item \(index) (\(location)): label \(label) is out of range; expected 0 ..< \(numClasses)"
        case .wrongFieldCount(let line, let expected, let found):
            message = "line \(line): expected \(expected) comma-separated fields, found \(found)"
        case .notAnInteger(let line, let column, let text):
            message = "line \(line), field \(column): expected an integer, found \"\(text)\""
        case .pixelOutOfRange(let line, let column, let value, let maxValue):
            message = "line \(line), field \(column): pixel value \(value) is out of range; expected 0 ... \(maxValue)"
        case .empty:
            message = "no data lines; expected at least one image"
        case .invalidArgument(let text):
            message = "invalid argument: \(text)"
        }
        return "\(path): \(message)"
    }

    static func hex(_ v: UInt32) -> String {
        let digits = String(v, radix: 16)
        return "0x" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits
    }

    static func magicName(_ v: UInt32) -> String {
        switch v {
        case 0x0000_0803: return "IDX unsigned-byte images, 3 dimensions"
        case 0x0000_0801: return "IDX unsigned-byte labels, 1 dimension"
        case 0x1f8b_0800...0x1f8b_08ff: return "a gzip header inside the decompressed data"
        default:
            if v >> 16 == 0, [0x08, 0x09, 0x0b, 0x0c, 0x0d, 0x0e].contains(Int((v >> 8) & 0xff)) {
                return "IDX with element type 0x\(String((v >> 8) & 0xff, radix: 16)) and \(v & 0xff) dimension(s)"
            }
            return "not an IDX file"
        }
    }
}
