import Dispatch

/// Splits `0..<count` into at most `Parallel.workers` contiguous chunks and runs `body(chunkIndex, range)` on
/// each concurrently (``chunkCount(_:work:)`` tells how many chunks there will be).
/// Used for element-wise passes over rows; BLAS calls do their own threading and never run inside `body`.
public enum Parallel {
    /// Worker count for element-wise passes. Defaults to OpenBLAS's thread count, so element-wise work uses the
    /// same cores that the GEMMs around it use (one rank bound to one core gets one worker).
    public static var workers: Int = max(1, BLASInfo.numThreads)

    /// Below this many scalar operations a pass runs on the calling thread: dispatch costs ~µs.
    public static let minimumWork = 1 << 15

    public static func chunkCount(_ count: Int, work: Int) -> Int {
        let n = min(workers, count)
        return (n <= 1 || work < minimumWork) ? 1 : n
    }

    @inline(__always)
    public static func forChunks(_ count: Int, work: Int, _ body: (Int, Range<Int>) -> Void) {
        let n = chunkCount(count, work: work)
        if n == 1 {
            body(0, 0..<count)
            return
        }
        DispatchQueue.concurrentPerform(iterations: n) { i in
            let lo = count * i / n, hi = count * (i + 1) / n
            if lo < hi { body(i, lo..<hi) }
        }
    }
}
