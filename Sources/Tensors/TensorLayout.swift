/// Named tensors packed one after another in one flat allocation, in a fixed order.
///
/// The order is the contract: two processes that build the same layout agree on every offset, so a flat buffer
/// laid out by it can be checksummed, saved or all-reduced without knowing what the tensors mean.
/// Offsets are rounded up to a multiple of 16 floats (64 bytes) so every tensor starts cache- and SIMD-aligned.
public struct TensorLayout {
    public struct Entry: Equatable {
        public let name: String
        public let shape: [Int]
        public let offset: Int
        public var count: Int { shape.reduce(1, *) }
    }

    public private(set) var entries: [Entry] = []
    public private(set) var totalCount: Int = 0
    private var index: [String: Int] = [:]

    public init() {}

    /// Appends a tensor; returns its offset. Names must be unique. With `packed: true` the tensor starts right
    /// where the previous one ends (no alignment padding), so consecutive packed tensors form one contiguous
    /// block — e.g. q, k and v weights [D, D] each read as one [3D, D] matrix by a fused GEMM.
    @discardableResult
    public mutating func add(_ name: String, _ shape: [Int], packed: Bool = false) -> Int {
        precondition(index[name] == nil, "TensorLayout: duplicate tensor \(name)")
        precondition(shape.allSatisfy { $0 >= 0 }, "TensorLayout: negative dimension in \(name) \(shape)")
        let offset = packed ? totalCount : (totalCount + 15) / 16 * 16
        entries.append(Entry(name: name, shape: shape, offset: offset))
        index[name] = entries.count - 1
        totalCount = offset + shape.reduce(1, *)
        return offset
    }

    public func entry(_ name: String) -> Entry? { index[name].map { entries[$0] } }

    public func contains(_ name: String) -> Bool { index[name] != nil }

    /// Sum of the tensors' element counts (excluding alignment padding).
    public var parameterCount: Int { entries.reduce(0) { $0 + $1.count } }
}

/// A ``TensorLayout`` together with the one ``FloatBuffer`` it describes.
public final class TensorStore {
    public let layout: TensorLayout
    public let storage: FloatBuffer

    public init(layout: TensorLayout) throws {
        self.layout = layout
        self.storage = try FloatBuffer(count: layout.totalCount)
    }

    /// Pointer to the first element of the named tensor. Traps on an unknown name: layouts are built by the
    /// program, never from user input (loaders check names against the layout before asking).
    public func pointer(_ name: String) -> UnsafeMutablePointer<Float> {
        guard let e = layout.entry(name) else { preconditionFailure("TensorStore: no tensor \(name)") }
        return storage.base + e.offset
    }

    /// First element of tensor `i` of the layout (no name lookup: for per-step loops).
    public func pointer(_ i: Int) -> UnsafeMutablePointer<Float> { storage.base + layout.entries[i].offset }

    /// Tensor `i` of the layout (no name lookup: for per-step loops).
    public func buffer(_ i: Int) -> UnsafeMutableBufferPointer<Float> {
        let e = layout.entries[i]
        return UnsafeMutableBufferPointer(start: storage.base + e.offset, count: e.count)
    }

    public func buffer(_ name: String) -> UnsafeMutableBufferPointer<Float> {
        guard let e = layout.entry(name) else { preconditionFailure("TensorStore: no tensor \(name)") }
        return UnsafeMutableBufferPointer(start: storage.base + e.offset, count: e.count)
    }

    public func zero() { storage.zero() }
}
