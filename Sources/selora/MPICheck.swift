import ArgumentParser
import Communication
import Foundation

/// Checks the MPI installation the trainer will use: every rank all-sums and broadcasts buffers whose exact
/// results are known, and reports per-check pass/fail. Run it under mpirun (launch/test does, with 2 ranks).
struct MPICheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mpi-check",
        abstract: "Verify all-reduce and broadcast across the ranks of an mpirun job (exact expected values).")

    @Option(help: "Largest buffer to all-reduce, in floats.")
    var maxCount = 1 << 22

    func validate() throws {
        guard maxCount > 0 else { throw ValidationError("--max-count must be positive, got \(maxCount)") }
    }

    func run() throws {
        let comm: Communicator = MPICommunicator.launchedByMPI ? try MPICommunicator() : SingleProcessCommunicator()
        let r = comm.rank, p = comm.size
        var passed = 0, failed = 0
        func check(_ name: String, _ ok: Bool) {
            if ok { passed += 1 } else { failed += 1 }
            if comm.isRoot || !ok { print("rank \(r)/\(p): \(ok ? "PASS" : "FAIL") \(name)") }
        }
        var count = 1
        while count <= maxCount {
            // Element i of rank r holds (r + 1)·(i mod 1024 + 1): small integers, so Float sums are exact.
            var f = (0..<count).map { Float((r + 1) * ($0 % 1024 + 1)) }
            try comm.allSum(&f)
            let factor = p * (p + 1) / 2
            check("allSum \(count) floats", f.indices.allSatisfy { f[$0] == Float(factor * ($0 % 1024 + 1)) })
            var d = (0..<min(count, 1 << 16)).map { Double(r) + Double($0) * 0.5 }
            try comm.allSum(&d)
            check("allSum \(d.count) doubles", d.indices.allSatisfy { d[$0] == Double(p * (p - 1) / 2) + Double(p) * Double($0) * 0.5 })
            count *= 64
        }
        // Where each rank runs (host name, padded to 64 bytes for the fixed-size gather).
        var name = Array(ProcessInfo.processInfo.hostName.utf8.prefix(64))
        name += [UInt8](repeating: 0, count: 64 - name.count)
        let names = try comm.allGather(name)
        if comm.isRoot {
            for i in 0..<p {
                let raw = names[(i * 64)..<((i + 1) * 64)].prefix { $0 != 0 }
                print("rank \(i) runs on \(String(decoding: raw, as: UTF8.self))")
            }
        }
        var bytes = [UInt8](repeating: UInt8(r & 0xff), count: 4096)
        if r == 0 { for i in bytes.indices { bytes[i] = UInt8((i * 7) & 0xff) } }
        try bytes.withUnsafeMutableBytes { try comm.broadcast($0, root: 0) }
        check("broadcast 4096 bytes from rank 0", bytes.indices.allSatisfy { bytes[$0] == UInt8(($0 * 7) & 0xff) })
        try comm.barrier()
        var totals = [Double(passed), Double(failed)]
        try comm.allSum(&totals)
        if let mpi = comm as? MPICommunicator { mpi.finalize() }
        if comm.isRoot { print("mpi-check (\(p) ranks): \(Int(totals[0])) passed, \(Int(totals[1])) failed") }
        if totals[1] > 0 { throw ExitCode(1) }
    }
}
