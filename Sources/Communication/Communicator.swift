/// The collective operations data-parallel training needs, over flat buffers only (never model objects).
///
/// Every rank must call the same collectives in the same order with buffers of the same length: that is the
/// whole contract. With one process, ``SingleProcessCommunicator`` makes every call a no-op.
public protocol Communicator: AnyObject {
    var rank: Int { get }
    var size: Int { get }
    /// In-place element-wise sum over all ranks.
    func allSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws
    func allSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws
    /// Rank `root`'s bytes replace every other rank's.
    func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws
    func barrier() throws
    /// Ends every rank of the job with `code` (never returns).
    func abort(code: Int32) -> Never
}

extension Communicator {
    public var isRoot: Bool { rank == 0 }

    public func allSum(_ values: inout [Float]) throws {
        try values.withUnsafeMutableBufferPointer { try allSum($0) }
    }

    public func allSum(_ values: inout [Double]) throws {
        try values.withUnsafeMutableBufferPointer { try allSum($0) }
    }
}

/// The communicator of a run without mpirun: rank 0 of 1, every collective a no-op.
public final class SingleProcessCommunicator: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {}
    public func allSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {}
    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws {}
    public func barrier() throws {}
    public func abort(code: Int32) -> Never { exit(code) }
}

#if canImport(Glibc)
import Glibc
#endif
