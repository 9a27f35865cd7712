import ArgumentParser
import Communication
import Foundation
import Logging
import Training

/// Options of data-parallel runs (the job itself is started by mpirun; see launch/train).
struct ParallelOptions: ParsableArguments {
    @Option(help: "Check every N steps that all ranks hold the same gates, scores and parameters.")
    var checkEvery = 10

    @Option(help: .hidden)
    var testPerturbRank: Int?

    @Option(help: .hidden)
    var testPerturbStep = 5

    /// Test hook: every rank writes its replicated state to DIR/rank-R.bin at the end.
    @Option(help: .hidden)
    var testDumpState: String?

    @Option(help: .hidden)
    var testKillRank: Int?
    @Option(help: .hidden)
    var testKillStep = 5
    @Option(help: .hidden)
    var testNanRank: Int?
    @Option(help: .hidden)
    var testNanStep = 5

    @Option(help: "On a NaN/Inf loss or gradient: stop (error; the last checkpoint is kept) or skip the update and go on.")
    var nonfinite: NonFinitePolicy = .stop

    func validate() throws {
        guard checkEvery > 0 else { throw ValidationError("--check-every must be positive, got \(checkEvery)") }
    }

    func apply(to dp: DataParallelTrainer) {
        if let r = testPerturbRank { dp.perturb = (r, testPerturbStep) }
        if let r = testKillRank { dp.killSelf = (r, testKillStep) }
        if let r = testNanRank { dp.poison = (r, testNanStep) }
        dp.nonFinitePolicy = nonfinite
    }

    func dumpState(_ dp: DataParallelTrainer) throws {
        guard let dir = testDumpState else { return }
        try Data(dp.stateBytes()).write(to: URL(fileURLWithPath: "\(dir)/rank-\(dp.comm.rank).bin"))
    }
}

/// Runs `body` with the job's communicator — Open MPI under mpirun, a single process otherwise — and a logger
/// that only rank 0 lets through below warnings. An error on any rank is printed with the rank and ends the
/// whole job (MPI_Abort) with a non-zero code, so no rank is left waiting in a collective.
func withCommunicator(_ runtime: RuntimeOptions, _ label: String, _ body: (Communicator, Logger) throws -> Void) throws {
    var log = runtime.start(label)
    let comm: Communicator
    let mpi: MPICommunicator?
    if MPICommunicator.launchedByMPI {
        let m = try MPICommunicator()
        comm = m
        mpi = m
    } else {
        comm = SingleProcessCommunicator()
        mpi = nil
    }
    if comm.rank != 0 { log.logLevel = max(log.logLevel, .warning) }
    log[metadataKey: "rank"] = comm.size > 1 ? "\(comm.rank)/\(comm.size)" : nil
    do {
        try body(comm, log)
    } catch {
        if comm.size > 1 {
            FileHandle.standardError.write(Data("Error: rank \(comm.rank) of \(comm.size): \(error)\n".utf8))
            comm.abort(code: 1)
        }
        throw error
    }
    mpi?.finalize()
}

extension NonFinitePolicy: ExpressibleByArgument {}
