import Foundation

/// Every failure of ``SafeTensorsFile`` and ``SafeTensorsWriter``.
///
/// `path` is the file being read or written. It is `nil` only for errors raised by
/// ``SafeTensorsWriter/add(_:dtype:rawBytes:shape:)`` and its siblings, before any file is involved;
/// those descriptions name the tensor instead.
public struct SafeTensorsError: Error, Equatable, CustomStringConvertible, LocalizedError {
    public var path: String?
    public var kind: Kind

    public init(path: String?, _ kind: Kind) {
        self.path = path
        self.kind = kind
    }

    public enum Kind: Equatable, Sendable {
        // Reading: the file and its framing.
        /// The file could not be opened or read (`reason` is the system's message).
        case unreadable(reason: String)
        /// Fewer than 8 bytes: there is no room for the u64 header length.
        case fileTooShort(size: Int)
        /// The declared header length exceeds ``SafeTensorsFile/maxHeaderLength`` (100,000,000 bytes).
        case headerTooLarge(declared: UInt64, limit: Int)
        /// `8 + declared` exceeds the file size.
        case headerBeyondFile(declared: UInt64, fileSize: Int)
        /// The header bytes are not valid UTF-8.
        case headerNotUTF8
        /// The header does not start with `{` (a safetensors header is a JSON object with no leading whitespace).
        case headerNotObject(firstByte: UInt8?)
        /// The header is not well-formed JSON; `offset` counts bytes from the start of the header.
        case headerInvalidJSON(offset: Int, message: String)
        /// The same key appears twice in a JSON object of the header.
        case duplicateKey(String)
        /// `__metadata__` is present but is not an object whose values are all strings.
        case invalidMetadata(message: String)
        /// A tensor entry is not an object, or one of `dtype` / `shape` / `data_offsets` is missing or of the wrong JSON type.
        case invalidEntry(tensor: String, message: String)
        /// `dtype` is a string that is not one of ``DType``'s raw values.
        case unknownDType(tensor: String, found: String)
        /// A dimension is negative, or the element count / byte count overflows `Int`.
        case invalidShape(tensor: String, shape: [Int], message: String)
        /// `data_offsets` has begin > end, or end beyond the data buffer (`dataLength` bytes).
        case invalidOffsets(tensor: String, begin: Int, end: Int, dataLength: Int)
        /// `end - begin` differs from (product of shape) × (dtype byte size).
        case sizeMismatch(tensor: String, dtype: DType, shape: [Int], expectedBytes: Int, foundBytes: Int)
        /// Tensors sorted by `data_offsets` do not tile the data buffer: the tensor begins at `found`
        /// but the previous tensor ended at `expected` (a hole if found > expected, an overlap if found < expected).
        case notContiguous(tensor: String, expectedBegin: Int, foundBegin: Int)
        /// The tensors end at `tensorsEnd` but the data buffer is `dataLength` bytes long (trailing bytes).
        case incompleteBuffer(tensorsEnd: Int, dataLength: Int)

        // Reading: accessors.
        /// No tensor of that name; `available` lists up to 10 names that exist (sorted).
        case tensorNotFound(name: String, available: [String], total: Int)
        /// The accessor cannot convert this dtype (`requested` names the accessor's element type).
        case dtypeMismatch(tensor: String, requested: String, found: DType)
        /// The tensor's shape differs from the one the caller expects.
        case shapeMismatch(tensor: String, expected: [Int], found: [Int])

        // Writing.
        /// The name is reserved (`__metadata__`) or already added.
        case invalidTensorName(name: String, reason: String)
        /// A dimension is negative or the product overflows.
        case invalidWriterShape(tensor: String, shape: [Int])
        /// The number of values (or bytes; `unit` says which) differs from what the shape and dtype require.
        case countMismatch(tensor: String, shape: [Int], expected: Int, found: Int, unit: String)
        /// Creating, writing, syncing or renaming the file failed (`reason` names the step and the system's message).
        case writeFailed(reason: String)
    }

    public var errorDescription: String? { description }

    public var description: String {
        let message: String
        switch kind {
        case .unreadable(let reason):
            message = "cannot read safetensors file: \(reason)"
        case .fileTooShort(let size):
            message = "file is \(size) byte(s); expected at least 8 (the little-endian u64 header length)"
        case .headerTooLarge(let declared, let limit):
            message = "header length field says \(declared) bytes; expected at most \(limit) (not a safetensors file?)"
        case .headerBeyondFile(let declared, let fileSize):
            message = "header length field says \(declared) bytes, so the header would end at byte \(UInt64(8) &+ declared)"
                + ", but the file is only \(fileSize) bytes (truncated file?)"
        case .headerNotUTF8:
            message = "header is not valid UTF-8; expected UTF-8 JSON"
        case .headerNotObject(let first):
            let found = first.map { String(format: "byte 0x%02x", Int($0)) } ?? "an empty header"
            message = "header must be a JSON object starting with '{'; found \(found)"
        case .headerInvalidJSON(let offset, let msg):
            message = "header is not valid JSON at header byte \(offset): \(msg)"
        case .duplicateKey(let key):
            message = "header has the key \"\(key)\" more than once; expected unique tensor names"
        case .invalidMetadata(let msg):
            message = "invalid \"__metadata__\": \(msg)"
        case .invalidEntry(let tensor, let msg):
            message = "tensor \"\(tensor)\": \(msg)"
        case .unknownDType(let tensor, let found):
            message = "tensor \"\(tensor)\": unknown dtype \"\(found)\"; expected one of "
                + DType.allCases.map(\.rawValue).joined(separator: ", ")
        case .invalidShape(let tensor, let shape, let msg):
            message = "tensor \"\(tensor)\": invalid shape \(shape): \(msg)"
        case .invalidOffsets(let tensor, let begin, let end, let dataLength):
            message = "tensor \"\(tensor)\": data_offsets [\(begin), \(end)] invalid; expected begin <= end <= \(dataLength)"
                + " (the data buffer's length)"
        case .sizeMismatch(let tensor, let dtype, let shape, let expected, let found):
            message = "tensor \"\(tensor)\": dtype \(dtype.rawValue) with shape \(shape) needs \(expected) bytes"
                + " but data_offsets span \(found) bytes"
        case .notContiguous(let tensor, let expected, let found):
            let what = found > expected ? "a hole of \(found - expected) bytes" : "an overlap of \(expected - found) bytes"
            message = "tensor \"\(tensor)\": data begins at \(found) but the previous tensor ends at \(expected) (\(what));"
                + " expected tensors to tile the data buffer exactly"
        case .incompleteBuffer(let tensorsEnd, let dataLength):
            message = "tensors cover data bytes [0, \(tensorsEnd)) but the data buffer is \(dataLength) bytes;"
                + " expected them to cover it exactly"
        case .tensorNotFound(let name, let available, let total):
            let list = available.map { "\"\($0)\"" }.joined(separator: ", ")
            let more = total > available.count ? ", … (\(total) in all)" : ""
            message = total == 0 ? "no tensor named \"\(name)\"; the file has no tensors"
                : "no tensor named \"\(name)\"; available: \(list)\(more)"
        case .dtypeMismatch(let tensor, let requested, let found):
            message = "tensor \"\(tensor)\" has dtype \(found.rawValue); cannot read it as \(requested)"
        case .shapeMismatch(let tensor, let expected, let found):
            message = "tensor \"\(tensor)\": expected shape \(expected), found \(found)"
        case .invalidTensorName(let name, let reason):
            message = "cannot add tensor \"\(name)\": \(reason)"
        case .invalidWriterShape(let tensor, let shape):
            message = "cannot add tensor \"\(tensor)\": shape \(shape) has a negative dimension or its product overflows"
        case .countMismatch(let tensor, let shape, let expected, let found, let unit):
            message = "cannot add tensor \"\(tensor)\": shape \(shape) needs \(expected) \(unit) but \(found) were given"
        case .writeFailed(let reason):
            message = "cannot write safetensors file: \(reason)"
        }
        if let path = path { return "\(path): \(message)" }
        return message
    }
}
