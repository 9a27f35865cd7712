import Foundation

/// Where one tensor lives in a safetensors file.
public struct TensorInfo: Equatable, Sendable {
    /// The tensor's key in the header.
    public let name: String
    public let dtype: DType
    /// Dimensions, outermost first (row-major). `[]` is a scalar (one element).
    public let shape: [Int]
    /// Byte range `data_offsets[0] ..< data_offsets[1]`, relative to the start of the data buffer
    /// (which begins at file byte `8 + headerLength`).
    public let byteRange: Range<Int>

    /// Product of `shape` (1 for a scalar, 0 if any dimension is 0).
    public var elementCount: Int { shape.reduce(1, *) }
}

/// A validated, read-only safetensors file (Hugging Face format).
///
/// Layout: bytes 0..<8 are a little-endian `u64` header length `N`; bytes `8 ..< 8+N` are a UTF-8 JSON
/// object (possibly padded at the end with spaces); the rest of the file is the data buffer.
/// The header maps each tensor name to `{"dtype": String, "shape": [Int], "data_offsets": [begin, end]}`
/// (offsets relative to the data buffer), and may hold `"__metadata__": {String: String}`.
///
/// `init(path:)` applies the same checks as the `safetensors` Rust crate (`SafeTensors::read_metadata` and
/// `Metadata::validate`), so a file accepted here is accepted there:
/// - the file has at least 8 bytes; `N <= 100_000_000`; `8 + N <=` file size;
/// - the header is UTF-8, starts with `{`, and is one JSON object (trailing whitespace allowed);
/// - each entry has a known `dtype`, a `shape` of non-negative integers whose product × dtype size does not
///   overflow, and `data_offsets` of two non-negative integers with `begin <= end <= ` data-buffer length
///   and `end - begin == product(shape) × dtype.byteSize`;
/// - the tensors, sorted by `(begin, end)`, tile the data buffer exactly: the first begins at 0, each begins
///   where the previous ended (no holes, no overlaps), and the last ends at the end of the file.
///
/// Differences from the Rust crate: a key that appears twice in a header object is rejected
/// (``SafeTensorsError/Kind/duplicateKey(_:)``) instead of keeping one of them; extra keys inside a tensor
/// entry are ignored, as there; `"__metadata__": null` is treated as absent, as there.
public struct SafeTensorsFile: Sendable {
    /// The largest header length accepted, as in the Rust crate (`MAX_HEADER_SIZE`).
    public static let maxHeaderLength = 100_000_000

    /// The path given to `init(path:)`, used in every error.
    public let path: String
    /// Header length `N` as stored in the first 8 bytes (including any padding).
    public let headerLength: Int
    /// The `__metadata__` object, or `[:]` if the header has none.
    public let metadata: [String: String]
    /// All tensor names, sorted ascending (by Unicode scalar values, as `String` `<`).
    public let names: [String]

    private let data: Data
    private let dataStart: Int
    private let infos: [String: TensorInfo]

    /// Reads (memory-mapped) and validates the file at `path`. Throws ``SafeTensorsError`` naming `path`.
    public init(path: String) throws {
        // Probe with open(2) first: Foundation's errors on Linux lose the system's reason.
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SafeTensorsError(path: path, .unreadable(reason: String(cString: strerror(errno)))) }
        var st = stat()
        let statResult = fstat(fd, &st)
        close(fd)
        if statResult == 0 && (st.st_mode & S_IFMT) == S_IFDIR {
            throw SafeTensorsError(path: path, .unreadable(reason: "is a directory; expected a file"))
        }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        } catch {
            throw SafeTensorsError(path: path, .unreadable(reason: (error as NSError).localizedDescription))
        }
        try self.init(data: data, path: path)
    }

    /// Validates an in-memory safetensors image; `path` is used only in error messages.
    public init(data: Data, path: String) throws {
        func fail(_ kind: SafeTensorsError.Kind) -> SafeTensorsError { SafeTensorsError(path: path, kind) }
        self.path = path
        self.data = data
        let size = data.count
        guard size >= 8 else { throw fail(.fileTooShort(size: size)) }
        var n: UInt64 = 0
        for (i, b) in data.prefix(8).enumerated() { n |= UInt64(b) << (8 * UInt64(i)) }
        guard n <= UInt64(SafeTensorsFile.maxHeaderLength) else {
            throw fail(.headerTooLarge(declared: n, limit: SafeTensorsFile.maxHeaderLength))
        }
        let headerLength = Int(n)
        guard 8 + headerLength <= size else { throw fail(.headerBeyondFile(declared: n, fileSize: size)) }
        self.headerLength = headerLength
        self.dataStart = 8 + headerLength
        let dataLength = size - dataStart

        let start = data.startIndex
        let headerBytes = [UInt8](data[(start + 8)..<(start + 8 + headerLength)])
        guard String(validating: headerBytes, as: UTF8.self) != nil else { throw fail(.headerNotUTF8) }
        guard headerBytes.first == UInt8(ascii: "{") else { throw fail(.headerNotObject(firstByte: headerBytes.first)) }
        let root: JSONValue
        do {
            root = try JSONParser.parse(headerBytes)
        } catch let e as JSONParseError {
            if let key = e.duplicateKey { throw fail(.duplicateKey(key)) }
            throw fail(.headerInvalidJSON(offset: e.offset, message: e.message))
        }
        guard case .object(let members) = root else { throw fail(.headerNotObject(firstByte: headerBytes.first)) }

        var metadata: [String: String] = [:]
        var infos: [String: TensorInfo] = [:]
        for (key, value) in members {
            if key == "__metadata__" {
                switch value {
                case .null: break
                case .object(let pairs):
                    for (k, v) in pairs {
                        guard case .string(let s) = v else {
                            throw fail(.invalidMetadata(message: "value of \"\(k)\" is \(v.typeName); expected a string"))
                        }
                        metadata[k] = s
                    }
                default:
                    throw fail(.invalidMetadata(message: "found \(value.typeName); expected an object of strings"))
                }
                continue
            }
            infos[key] = try SafeTensorsFile.parseEntry(name: key, value, dataLength: dataLength, fail: fail)
        }

        // The Rust crate's Metadata::validate: sorted by offsets, the tensors must tile [0, dataLength).
        let ordered = infos.values.sorted {
            ($0.byteRange.lowerBound, $0.byteRange.upperBound, $0.name) < ($1.byteRange.lowerBound, $1.byteRange.upperBound, $1.name)
        }
        var expected = 0
        for info in ordered {
            guard info.byteRange.lowerBound == expected else {
                throw fail(.notContiguous(tensor: info.name, expectedBegin: expected, foundBegin: info.byteRange.lowerBound))
            }
            expected = info.byteRange.upperBound
        }
        guard expected == dataLength else { throw fail(.incompleteBuffer(tensorsEnd: expected, dataLength: dataLength)) }

        self.metadata = metadata
        self.infos = infos
        self.names = infos.keys.sorted()
    }

    private static func parseEntry(name: String, _ value: JSONValue, dataLength: Int,
                                   fail: (SafeTensorsError.Kind) -> SafeTensorsError) throws -> TensorInfo {
        guard case .object(let fields) = value else {
            throw fail(.invalidEntry(tensor: name, message: "entry is \(value.typeName); expected an object"))
        }
        func field(_ key: String) throws -> JSONValue {
            guard let v = fields.first(where: { $0.key == key })?.value else {
                throw fail(.invalidEntry(tensor: name, message: "missing \"\(key)\""))
            }
            return v
        }
        func integers(_ key: String, _ v: JSONValue) throws -> [Int] {
            guard case .array(let items) = v else {
                throw fail(.invalidEntry(tensor: name, message: "\"\(key)\" is \(v.typeName); expected an array of integers"))
            }
            return try items.map { item in
                guard case .integer(let i) = item else {
                    throw fail(.invalidEntry(tensor: name, message: "\"\(key)\" contains \(item.typeName); expected integers"))
                }
                return i
            }
        }

        let dtypeValue = try field("dtype")
        guard case .string(let dtypeName) = dtypeValue else {
            throw fail(.invalidEntry(tensor: name, message: "\"dtype\" is \(dtypeValue.typeName); expected a string"))
        }
        guard let dtype = DType(rawValue: dtypeName) else { throw fail(.unknownDType(tensor: name, found: dtypeName)) }

        let shape = try integers("shape", try field("shape"))
        var elements = 1
        for d in shape {
            guard d >= 0 else { throw fail(.invalidShape(tensor: name, shape: shape, message: "dimension \(d) is negative")) }
            let (p, overflow) = elements.multipliedReportingOverflow(by: d)
            guard !overflow else {
                throw fail(.invalidShape(tensor: name, shape: shape, message: "element count overflows a 64-bit integer"))
            }
            elements = p
        }
        let (byteCount, overflow) = elements.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow else {
            throw fail(.invalidShape(tensor: name, shape: shape, message: "byte count overflows a 64-bit integer"))
        }

        let offsetsValue = try field("data_offsets")
        let offsets = try integers("data_offsets", offsetsValue)
        guard offsets.count == 2 else {
            throw fail(.invalidEntry(tensor: name, message: "\"data_offsets\" has \(offsets.count) element(s); expected 2 [begin, end]"))
        }
        let (begin, end) = (offsets[0], offsets[1])
        guard begin >= 0, begin <= end, end <= dataLength else {
            throw fail(.invalidOffsets(tensor: name, begin: begin, end: end, dataLength: dataLength))
        }
        guard end - begin == byteCount else {
            throw fail(.sizeMismatch(tensor: name, dtype: dtype, shape: shape, expectedBytes: byteCount, foundBytes: end - begin))
        }
        return TensorInfo(name: name, dtype: dtype, shape: shape, byteRange: begin..<end)
    }

    // MARK: - Lookup

    /// True if the file has a tensor named `name`.
    public func contains(_ name: String) -> Bool { infos[name] != nil }

    /// The tensor's dtype, shape and byte range; throws ``SafeTensorsError/Kind/tensorNotFound(name:available:total:)``
    /// listing up to 10 existing names.
    public func info(_ name: String) throws -> TensorInfo {
        guard let info = infos[name] else {
            throw SafeTensorsError(path: path, .tensorNotFound(name: name, available: Array(names.prefix(10)), total: names.count))
        }
        return info
    }

    /// All tensors, sorted by name.
    public var tensors: [TensorInfo] { names.compactMap { infos[$0] } }

    /// A copy of the tensor's bytes exactly as stored (little-endian elements).
    public func rawBytes(_ name: String) throws -> [UInt8] {
        let info = try info(name)
        let lo = data.startIndex + dataStart + info.byteRange.lowerBound
        return [UInt8](data[lo..<(lo + info.byteRange.count)])
    }

    // MARK: - Typed accessors

    /// The tensor's elements in row-major order as `Float`.
    ///
    /// F32 is copied bit-exactly; F16 and BF16 are widened exactly; F64 is rounded to the nearest `Float`
    /// (IEEE round-to-nearest-even; magnitudes beyond `Float.greatestFiniteMagnitude` become ±infinity).
    /// Any other dtype throws ``SafeTensorsError/Kind/dtypeMismatch(tensor:requested:found:)``.
    public func floats(_ name: String) throws -> [Float] {
        let info = try info(name)
        switch info.dtype {
        case .F32: return elements(info) { (b: UInt32) in Float(bitPattern: b) }
        case .F16: return elements(info) { (b: UInt16) in Float(Self.halfToFloat(b)) }
        case .BF16: return elements(info) { (b: UInt16) in Float(bitPattern: UInt32(b) << 16) }
        case .F64: return elements(info) { (b: UInt64) in Float(Double(bitPattern: b)) }
        default: throw SafeTensorsError(path: path, .dtypeMismatch(tensor: name, requested: "Float (F32/F16/BF16/F64)", found: info.dtype))
        }
    }

    /// As ``floats(_:)``, but first checks that the tensor's shape equals `expectShape` exactly
    /// (throws ``SafeTensorsError/Kind/shapeMismatch(tensor:expected:found:)`` otherwise).
    public func floats(_ name: String, expectShape: [Int]) throws -> [Float] {
        try checkShape(name, expectShape)
        return try floats(name)
    }

    /// The tensor's elements as `Double`: F64 bit-exactly; F32, F16, BF16 widened exactly.
    public func doubles(_ name: String) throws -> [Double] {
        let info = try info(name)
        switch info.dtype {
        case .F64: return elements(info) { (b: UInt64) in Double(bitPattern: b) }
        case .F32: return elements(info) { (b: UInt32) in Double(Float(bitPattern: b)) }
        case .F16: return elements(info) { (b: UInt16) in Double(Self.halfToFloat(b)) }
        case .BF16: return elements(info) { (b: UInt16) in Double(Float(bitPattern: UInt32(b) << 16)) }
        default: throw SafeTensorsError(path: path, .dtypeMismatch(tensor: name, requested: "Double (F64/F32/F16/BF16)", found: info.dtype))
        }
    }

    /// As ``doubles(_:)`` after checking the shape equals `expectShape`.
    public func doubles(_ name: String, expectShape: [Int]) throws -> [Double] {
        try checkShape(name, expectShape)
        return try doubles(name)
    }

    /// The tensor's elements as `Int64`: I64 exactly; I32, I16, I8 sign-extended; U32, U16, U8 zero-extended.
    /// U64, BOOL and floating types throw ``SafeTensorsError/Kind/dtypeMismatch(tensor:requested:found:)``.
    public func int64s(_ name: String) throws -> [Int64] {
        let info = try info(name)
        switch info.dtype {
        case .I64: return elements(info) { (b: UInt64) in Int64(bitPattern: b) }
        case .I32: return elements(info) { (b: UInt32) in Int64(Int32(bitPattern: b)) }
        case .I16: return elements(info) { (b: UInt16) in Int64(Int16(bitPattern: b)) }
        case .I8: return elements(info) { (b: UInt8) in Int64(Int8(bitPattern: b)) }
        case .U32: return elements(info) { (b: UInt32) in Int64(b) }
        case .U16: return elements(info) { (b: UInt16) in Int64(b) }
        case .U8: return elements(info) { (b: UInt8) in Int64(b) }
        default: throw SafeTensorsError(path: path, .dtypeMismatch(tensor: name, requested: "Int64 (I64/I32/I16/I8/U32/U16/U8)", found: info.dtype))
        }
    }

    /// As ``int64s(_:)`` after checking the shape equals `expectShape`.
    public func int64s(_ name: String, expectShape: [Int]) throws -> [Int64] {
        try checkShape(name, expectShape)
        return try int64s(name)
    }

    private func checkShape(_ name: String, _ expected: [Int]) throws {
        let info = try info(name)
        guard info.shape == expected else {
            throw SafeTensorsError(path: path, .shapeMismatch(tensor: name, expected: expected, found: info.shape))
        }
    }

    /// Decodes each little-endian element of `info` (stored as the unsigned type `Bits`) with `convert`.
    private func elements<Bits: FixedWidthInteger & UnsignedInteger, T>(_ info: TensorInfo, _ convert: (Bits) -> T) -> [T] {
        let count = info.byteRange.count / MemoryLayout<Bits>.size
        guard count > 0 else { return [] }
        let offset = dataStart + info.byteRange.lowerBound
        return data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> [T] in
            [T](unsafeUninitializedCapacity: count) { buffer, initialized in
                for i in 0..<count {
                    let bits = raw.loadUnaligned(fromByteOffset: offset + i * MemoryLayout<Bits>.size, as: Bits.self)
                    buffer[i] = convert(Bits(littleEndian: bits))
                }
                initialized = count
            }
        }
    }

    /// IEEE 754 binary16 → binary32, exact (subnormals, infinities and NaN payloads preserved).
    static func halfToFloat(_ h: UInt16) -> Float {
        let sign = UInt32(h >> 15) << 31
        let exponent = Int((h >> 10) & 0x1f)
        let mantissa = UInt32(h & 0x3ff)
        if exponent == 0x1f {  // inf / NaN
            return Float(bitPattern: sign | 0x7f80_0000 | (mantissa << 13))
        }
        if exponent == 0 {  // zero / subnormal: mantissa × 2^-24, exact in Float
            let magnitude = Float(mantissa) * Float(sign: .plus, exponent: -24, significand: 1)
            return sign == 0 ? magnitude : -magnitude
        }
        return Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | (mantissa << 13))
    }
}
