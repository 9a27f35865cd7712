import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Builds a safetensors file in memory and writes it atomically.
///
/// Output is deterministic and byte-identical to what the `safetensors` Rust crate (and so the Python
/// `safetensors` package) writes for the same tensors and at most one metadata entry:
/// - Data layout: tensors sorted by dtype in descending order of the Rust crate's `Dtype` enum
///   (U64, I64, F64, F32, U32, I32, BF16, F16, U16, I16, I8, U8, BOOL), ties broken by name ascending,
///   each immediately after the previous one, so every tensor starts at a multiple of its element size.
/// - Header: compact JSON (no spaces), `"__metadata__"` first (omitted when `metadata` is empty) with its
///   keys sorted ascending, then each tensor as `{"dtype":…,"shape":[…],"data_offsets":[begin,end]}`
///   in the data-layout order above (for tensors of one dtype that is simply name order).
/// - The header is padded with spaces (0x20) to a multiple of 8 bytes; the u64 length counts the padding.
public struct SafeTensorsWriter: Sendable {
    private struct Entry {
        var dtype: DType
        var shape: [Int]
        var bytes: [UInt8]
    }

    private var entries: [String: Entry] = [:]

    public init() {}

    /// Names added so far, sorted.
    public var names: [String] { entries.keys.sorted() }

    /// Adds an F32 tensor. `floats.count` must equal the product of `shape` (`[]` = scalar = 1 element).
    public mutating func add(_ name: String, floats: [Float], shape: [Int]) throws {
        try checkCount(name, shape: shape, count: floats.count)
        var bytes = [UInt8]()
        bytes.reserveCapacity(floats.count * 4)
        for v in floats { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
        try insert(name, Entry(dtype: .F32, shape: shape, bytes: bytes))
    }

    /// Adds an F64 tensor. `doubles.count` must equal the product of `shape`.
    public mutating func add(_ name: String, doubles: [Double], shape: [Int]) throws {
        try checkCount(name, shape: shape, count: doubles.count)
        var bytes = [UInt8]()
        bytes.reserveCapacity(doubles.count * 8)
        for v in doubles { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
        try insert(name, Entry(dtype: .F64, shape: shape, bytes: bytes))
    }

    /// Adds an I64 tensor. `int64s.count` must equal the product of `shape`.
    public mutating func add(_ name: String, int64s: [Int64], shape: [Int]) throws {
        try checkCount(name, shape: shape, count: int64s.count)
        var bytes = [UInt8]()
        bytes.reserveCapacity(int64s.count * 8)
        for v in int64s { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
        try insert(name, Entry(dtype: .I64, shape: shape, bytes: bytes))
    }

    /// Adds a tensor of any dtype from its little-endian bytes; `rawBytes.count` must equal
    /// product(`shape`) × `dtype.byteSize`.
    public mutating func add(_ name: String, dtype: DType, rawBytes: [UInt8], shape: [Int]) throws {
        let elements = try elementCount(name, shape)
        let (expected, overflow) = elements.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow else { throw SafeTensorsError(path: nil, .invalidWriterShape(tensor: name, shape: shape)) }
        guard expected == rawBytes.count else {
            throw SafeTensorsError(path: nil, .countMismatch(tensor: name, shape: shape, expected: expected,
                                                             found: rawBytes.count, unit: "bytes of \(dtype.rawValue)"))
        }
        try insert(name, Entry(dtype: dtype, shape: shape, bytes: rawBytes))
    }

    private func elementCount(_ name: String, _ shape: [Int]) throws -> Int {
        var product = 1
        for d in shape {
            let (p, overflow) = product.multipliedReportingOverflow(by: d)
            guard d >= 0, !overflow else { throw SafeTensorsError(path: nil, .invalidWriterShape(tensor: name, shape: shape)) }
            product = p
        }
        return product
    }

    private func checkCount(_ name: String, shape: [Int], count: Int) throws {
        let expected = try elementCount(name, shape)
        guard expected == count else {
            throw SafeTensorsError(path: nil, .countMismatch(tensor: name, shape: shape, expected: expected, found: count, unit: "values"))
        }
    }

    private mutating func insert(_ name: String, _ entry: Entry) throws {
        guard name != "__metadata__" else {
            throw SafeTensorsError(path: nil, .invalidTensorName(name: name, reason: "\"__metadata__\" is reserved for the metadata"))
        }
        guard entries[name] == nil else {
            throw SafeTensorsError(path: nil, .invalidTensorName(name: name, reason: "a tensor of that name was already added"))
        }
        entries[name] = entry
    }

    /// The complete file image: 8-byte little-endian header length, padded header, data.
    public func serialized(metadata: [String: String] = [:]) -> [UInt8] {
        let order = entries.keys.sorted { a, b in
            let (ra, rb) = (entries[a]?.dtype.referenceOrder ?? 0, entries[b]?.dtype.referenceOrder ?? 0)
            return ra != rb ? ra > rb : a < b
        }
        var header: [UInt8] = [UInt8(ascii: "{")]
        var first = true
        func comma() { if !first { header.append(UInt8(ascii: ",")) }; first = false }
        if !metadata.isEmpty {
            comma()
            JSONWriter.appendString("__metadata__", to: &header)
            header.append(contentsOf: Array(":{".utf8))
            for (i, key) in metadata.keys.sorted().enumerated() {
                if i > 0 { header.append(UInt8(ascii: ",")) }
                JSONWriter.appendString(key, to: &header)
                header.append(UInt8(ascii: ":"))
                JSONWriter.appendString(metadata[key] ?? "", to: &header)
            }
            header.append(UInt8(ascii: "}"))
        }
        var offset = 0
        for name in order {
            guard let e = entries[name] else { continue }
            comma()
            JSONWriter.appendString(name, to: &header)
            header.append(contentsOf: Array(":{\"dtype\":".utf8))
            JSONWriter.appendString(e.dtype.rawValue, to: &header)
            header.append(contentsOf: Array(",\"shape\":[\(e.shape.map(String.init).joined(separator: ","))]".utf8))
            header.append(contentsOf: Array(",\"data_offsets\":[\(offset),\(offset + e.bytes.count)]}".utf8))
            offset += e.bytes.count
        }
        header.append(UInt8(ascii: "}"))
        let padding = (8 - header.count % 8) % 8
        header.append(contentsOf: [UInt8](repeating: 0x20, count: padding))

        var out = [UInt8]()
        out.reserveCapacity(8 + header.count + offset)
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: header)
        for name in order { if let e = entries[name] { out.append(contentsOf: e.bytes) } }
        return out
    }

    /// Writes ``serialized(metadata:)`` to `path` atomically: the bytes go to a new temporary file in the
    /// same directory (`.<name>.tmp-<pid>-<random>`), which is fsync'ed and then renamed over `path`;
    /// finally the directory is fsync'ed (best effort). A pre-existing file at `path` is therefore either
    /// left untouched (on any error) or replaced whole. On error the temporary file is removed and a
    /// ``SafeTensorsError/Kind/writeFailed(reason:)`` naming `path`, the failed step and the system's message is thrown.
    public func write(to path: String, metadata: [String: String] = [:]) throws {
        try SafeTensorsWriter.atomicWrite(serialized(metadata: metadata), to: path)
    }

    static func atomicWrite(_ bytes: [UInt8], to path: String) throws {
        func fail(_ step: String, _ code: Int32 = errno) -> SafeTensorsError {
            SafeTensorsError(path: path, .writeFailed(reason: "\(step): \(String(cString: strerror(code)))"))
        }
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        let temp = directory + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"

        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
        guard fd >= 0 else { throw fail("cannot create temporary file \(temp)") }
        var closed = false
        var renamed = false
        defer {
            if !closed { close(fd) }
            if !renamed { unlink(temp) }
        }
        var written = 0
        try bytes.withUnsafeBytes { raw in
            while written < raw.count {
                let n = posixWrite(fd, raw.baseAddress.map { $0 + written }, raw.count - written)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw fail("cannot write temporary file \(temp)")
                }
                written += n
            }
        }
        guard fsync(fd) == 0 else { throw fail("cannot fsync temporary file \(temp)") }
        closed = true
        guard close(fd) == 0 else { throw fail("cannot close temporary file \(temp)") }
        guard rename(temp, path) == 0 else { throw fail("cannot rename \(temp) to the target") }
        renamed = true
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { _ = fsync(dfd); close(dfd) }
    }
}

/// `write(2)`, reachable from inside `SafeTensorsWriter` whose own `write(to:)` shadows the name.
private func posixWrite(_ fd: Int32, _ buffer: UnsafeRawPointer?, _ count: Int) -> Int {
    write(fd, buffer, count)
}
