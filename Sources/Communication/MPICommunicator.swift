import CMPI
#if canImport(Glibc)
import Glibc
#endif

/// A failed MPI call, naming the operation and this rank.
public struct CommunicationError: Error, CustomStringConvertible {
    public let operation: String
    public let rank: Int
    public let code: Int32
    public var description: String {
        var len: Int32 = 0
        var text = [CChar](repeating: 0, count: Int(MPI_MAX_ERROR_STRING) + 1)
        MPI_Error_string(code, &text, &len)
        return "rank \(rank): \(operation) failed: \(String(cString: text)) (MPI error \(code))"
    }
}

/// Open MPI over `MPI_COMM_WORLD`. Errors are returned (MPI_ERRORS_RETURN), not fatal, so a failed collective
/// becomes a Swift error naming the rank.
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    private let comm: MPI_Comm

    /// True when this process was started by mpirun/mpiexec (Open MPI sets OMPI_COMM_WORLD_SIZE).
    public static var launchedByMPI: Bool { getenv("OMPI_COMM_WORLD_SIZE") != nil || getenv("PMIX_RANK") != nil }

    /// Initialises MPI (once per process). Call ``finalize()`` before exiting normally.
    public init() throws {
        var initialized: Int32 = 0
        MPI_Initialized(&initialized)
        if initialized == 0 {
            let rc = MPI_Init(nil, nil)
            guard rc == MPI_SUCCESS else { throw CommunicationError(operation: "MPI_Init", rank: -1, code: rc) }
        }
        comm = cmpi_comm_world()
        MPI_Comm_set_errhandler(comm, cmpi_errors_return())
        var r: Int32 = 0, s: Int32 = 0
        MPI_Comm_rank(comm, &r)
        MPI_Comm_size(comm, &s)
        rank = Int(r); size = Int(s)
    }

    public func finalize() {
        var finalized: Int32 = 0
        MPI_Finalized(&finalized)
        if finalized == 0 { MPI_Finalize() }
    }

    private func check(_ rc: Int32, _ op: String) throws {
        guard rc == MPI_SUCCESS else { throw CommunicationError(operation: op, rank: rank, code: rc) }
    }

    /// MPI counts are 32-bit: larger buffers go in pieces of at most 2³⁰ elements.
    static let maxPiece = 1 << 30

    private func inPieces(_ count: Int, _ body: (_ offset: Int, _ n: Int32) throws -> Void) rethrows {
        for lo in stride(from: 0, to: count, by: Self.maxPiece) { try body(lo, Int32(min(Self.maxPiece, count - lo))) }
    }

    public func allSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        guard let base = buffer.baseAddress else { return }
        try inPieces(buffer.count) { lo, n in
            try check(MPI_Allreduce(cmpi_in_place(), base + lo, n, cmpi_float(), cmpi_sum(), comm), "MPI_Allreduce(\(n) floats)")
        }
    }

    public func allSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {
        guard let base = buffer.baseAddress else { return }
        try inPieces(buffer.count) { lo, n in
            try check(MPI_Allreduce(cmpi_in_place(), base + lo, n, cmpi_double(), cmpi_sum(), comm), "MPI_Allreduce(\(n) doubles)")
        }
    }

    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws {
        guard let base = buffer.baseAddress else { return }
        try inPieces(buffer.count) { lo, n in
            try check(MPI_Bcast(base + lo, n, cmpi_uint8(), Int32(root), comm), "MPI_Bcast(\(n) bytes)")
        }
    }

    final class MPIPending: PendingCollective {
        var requests: [MPI_Request?] = []
    }

    public func makeRequest() -> PendingCollective { MPIPending() }

    public func startAllSum(_ buffer: UnsafeMutableBufferPointer<Float>, request: PendingCollective) throws {
        guard let p = request as? MPIPending else {
            preconditionFailure("MPICommunicator.startAllSum: the request was made by another communicator")
        }
        precondition(p.completed, "MPICommunicator.startAllSum: the request is still in flight")
        p.requests.removeAll(keepingCapacity: true)
        p.count = buffer.count
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        p.completed = false
        try inPieces(buffer.count) { lo, n in
            var r: MPI_Request? = cmpi_request_null()
            try check(MPI_Iallreduce(cmpi_in_place(), base + lo, n, cmpi_float(), cmpi_sum(), comm, &r),
                      "MPI_Iallreduce(\(n) floats)")
            p.requests.append(r)
        }
    }

    public func poll(_ request: PendingCollective) throws -> Bool {
        guard !request.completed, let p = request as? MPIPending else { return true }
        var all = true
        for i in p.requests.indices {
            var flag: Int32 = 0
            try check(MPI_Test(&p.requests[i], &flag, cmpi_status_ignore()), "MPI_Test")
            if flag == 0 { all = false }
        }
        p.completed = all
        return all
    }

    public func wait(_ request: PendingCollective) throws {
        guard !request.completed, let p = request as? MPIPending else { return }
        for i in p.requests.indices {
            try check(MPI_Wait(&p.requests[i], cmpi_status_ignore()), "MPI_Wait")
        }
        p.completed = true
    }

    public func allGather(_ bytes: [UInt8]) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: bytes.count * size)
        try bytes.withUnsafeBufferPointer { src in
            try out.withUnsafeMutableBufferPointer { dst in
                try check(MPI_Allgather(src.baseAddress, Int32(bytes.count), cmpi_uint8(), dst.baseAddress,
                                        Int32(bytes.count), cmpi_uint8(), comm), "MPI_Allgather(\(bytes.count) bytes)")
            }
        }
        return out
    }

    public func barrier() throws { try check(MPI_Barrier(comm), "MPI_Barrier") }

    public func abort(code: Int32) -> Never {
        MPI_Abort(comm, code)
        exit(code)
    }
}
