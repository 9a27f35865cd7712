#if canImport(Glibc)
import Glibc
#endif

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
    /// A request object for ``startAllSum(_:request:)``, reusable once its collective has completed (a training
    /// step keeps one per bucket, so starting a collective allocates nothing).
    func makeRequest() -> PendingCollective
    /// Starts an in-place sum in `request` and returns at once; the buffer must not be touched until ``wait(_:)``.
    func startAllSum(_ buffer: UnsafeMutableBufferPointer<Float>, request: PendingCollective) throws
    /// Lets started collectives make progress without blocking (MPI progresses non-blocking operations only
    /// inside MPI calls); returns whether `request` has completed.
    func poll(_ request: PendingCollective) throws -> Bool
    /// Blocks until the collective has completed.
    func wait(_ request: PendingCollective) throws
    /// Every rank's `bytes` (all the same length), concatenated in rank order.
    func allGather(_ bytes: [UInt8]) throws -> [UInt8]
    /// Rank `root`'s bytes replace every other rank's.
    func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws
    func barrier() throws
    /// Ends every rank of the job with `code` (never returns).
    func abort(code: Int32) -> Never
}

/// A collective in flight (see ``Communicator/startAllSum(_:request:)``); made by ``Communicator/makeRequest()``.
open class PendingCollective {
    public internal(set) var count = 0
    public internal(set) var completed = true
    public init() {}
}

extension Communicator {
    public var isRoot: Bool { rank == 0 }

    /// Starts an in-place sum in a new request (see ``startAllSum(_:request:)``).
    public func startAllSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws -> PendingCollective {
        let r = makeRequest()
        try startAllSum(buffer, request: r)
        return r
    }

    public func allSum(_ values: inout [Float]) throws {
        try values.withUnsafeMutableBufferPointer { try allSum($0) }
    }

    public func allSum(_ values: inout [Double]) throws {
        try values.withUnsafeMutableBufferPointer { try allSum($0) }
    }

    /// Each rank's `UInt64` values, rank by rank: [[rank 0's], [rank 1's], …].
    public func allGather(_ values: [UInt64]) throws -> [[UInt64]] {
        var bytes: [UInt8] = []
        for v in values { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        let all = try allGather(bytes)
        let per = values.count
        return (0..<size).map { r in
            (0..<per).map { i in
                var v: UInt64 = 0
                for b in 0..<8 { v |= UInt64(all[(r * per + i) * 8 + b]) << (8 * b) }
                return v
            }
        }
    }
}

/// The communicator of a run without mpirun: rank 0 of 1, every collective a no-op.
public final class SingleProcessCommunicator: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {}
    public func allSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {}
    public func makeRequest() -> PendingCollective { PendingCollective() }
    public func startAllSum(_ buffer: UnsafeMutableBufferPointer<Float>, request: PendingCollective) throws {
        request.count = buffer.count
        request.completed = true
    }
    public func poll(_ request: PendingCollective) throws -> Bool { true }
    public func wait(_ request: PendingCollective) throws {}
    public func allGather(_ bytes: [UInt8]) throws -> [UInt8] { bytes }
    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws {}
    public func barrier() throws {}
    public func abort(code: Int32) -> Never { exit(code) }
}
