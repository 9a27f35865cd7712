import ArgumentParser
import Communication
import Foundation
import Glibc
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

    @Option(help: "Gradient accumulation: micro-batches per step on each rank, so the global --batch-size stays the same on fewer ranks or with less memory (per-rank micro-batch = batch / (ranks × K)).")
    var accumulate = 1

    func apply(to dp: DataParallelTrainer) {
        if testPerturbRank != nil || testKillRank != nil || testNanRank != nil {
            dp.faults = InjectedFaults(perturb: testPerturbRank.map { ($0, testPerturbStep) },
                                       kill: testKillRank.map { ($0, testKillStep) },
                                       nan: testNanRank.map { ($0, testNanStep) })
        }
        dp.nonFinitePolicy = nonfinite
    }

    func dumpState(_ dp: DataParallelTrainer) throws {
        guard let dir = testDumpState else { return }
        try Data(dp.stateBytes()).write(to: URL(fileURLWithPath: "\(dir)/rank-\(dp.comm.rank).bin"))
    }
}

/// The faults the hidden `--test-*` options ask for, each on one (rank, step): nudge one gate score (a
/// desynchronized rank), SIGKILL itself (a dying rank), report a NaN loss.
final class InjectedFaults: TrainingFaults {
    let perturb, kill, nan: (rank: Int, step: Int)?

    init(perturb: (Int, Int)?, kill: (Int, Int)?, nan: (Int, Int)?) {
        self.perturb = perturb; self.kill = kill; self.nan = nan
    }

    func willStart(step: Int, rank: Int, trainer: Trainer) {
        if let p = perturb, p == (rank, step), let g = trainer.gates { g.scores[0] += 1e-3 }
        if let k = kill, k == (rank, step) { Glibc.kill(getpid(), SIGKILL) }
    }

    func reportedLossSum(_ lossSum: Double, step: Int, rank: Int) -> Double {
        if let n = nan, n == (rank, step) { return .nan }
        return lossSum
    }
}

/// Preemption: SIGTERM (Slurm's, before its SIGKILL), SIGINT or SIGUSR1 (what mpirun forwards to the ranks) asks
/// the run to stop at the next step boundary — every rank agrees through the all-reduce, rank 0 writes a checkpoint,
/// and every rank exits with status 75. A second signal exits at once (status 128 + signal): a checkpoint being
/// written then is a temporary file, never the newest good one. Returns the signal sources (keep them alive).
func stopOnSignals(_ stop: StopRequest, rank: Int) -> [DispatchSourceSignal] {
    [SIGTERM, SIGINT, SIGUSR1].map { sig in
        signal(sig, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
        source.setEventHandler {
            if stop.isRequested { _exit(128 + sig) }
            stop.request()
            FileHandle.standardError.write(Data(("rank \(rank): signal \(sig) received: checkpoint at the next step "
                + "boundary, then exit \(PreemptedError.exitStatus); a second signal exits at once\n").utf8))
        }
        source.resume()
        return source
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
        do { try body(comm, log) } catch let e as ConfigError { throw e.validationError }
    } catch let p as PreemptedError {
        // Every rank stopped at the same step after the checkpoint: a clean, requeueable exit on every rank.
        log.warning("\(p)")
        mpi?.finalize()
        throw ExitCode(PreemptedError.exitStatus)
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
