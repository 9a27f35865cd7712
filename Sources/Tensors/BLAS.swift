import COpenBLAS
import Foundation

/// Row-major single-precision GEMM through OpenBLAS:
/// C[m×n] = alpha · op(A)[m×k] · op(B)[k×n] + beta · C, where op(X) = Xᵀ when the flag is set.
/// `lda`, `ldb`, `ldc` are the row strides of A, B and C as stored.
@inline(__always)
public func sgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                  alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                  b: UnsafePointer<Float>, ldb: Int,
                  beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
}

/// Σ x[i] · y[i] over `n` contiguous floats, through OpenBLAS (Float accumulation in vector lanes).
@inline(__always)
public func sdot(_ n: Int, _ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>) -> Float {
    cblas_sdot(blasint(n), x, 1, y, 1)
}

/// What OpenBLAS runs on, and whether that is the fast kernel for this CPU.
public enum BLASInfo {
    /// The kernel family OpenBLAS selected (`openblas_get_corename()`), e.g. "SkylakeX", "Haswell", "Prescott".
    public static var coreName: String {
        guard let p = openblas_get_corename() else { return "unknown" }
        return String(cString: p)
    }

    public static var numThreads: Int { Int(openblas_get_num_threads()) }

    public static func setNumThreads(_ n: Int) { openblas_set_num_threads(Int32(n)) }

    /// Runs `body` with OpenBLAS limited to the calling thread, for regions that call small GEMMs from several
    /// of our own threads at once (each call then runs where it is made instead of waking BLAS workers).
    public static func singleThreaded<T>(_ body: () throws -> T) rethrows -> T {
        let n = numThreads
        if n == 1 { return try body() }
        setNumThreads(1)
        defer { setNumThreads(n) }
        return try body()
    }

    /// CPU feature flags from /proc/cpuinfo (Linux); empty elsewhere.
    public static var cpuFlags: Set<String> {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return [] }
        for line in text.split(separator: "\n") where line.hasPrefix("flags") {
            if let colon = line.firstIndex(of: ":") {
                return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
            }
        }
        return []
    }

    /// A warning when OpenBLAS runs a kernel below what the CPU can do: a generic kernel on an AVX2 or AVX-512
    /// CPU, or an AVX2 kernel on an AVX-512 CPU. OpenBLAS 0.3.21 does not recognise some recent CPUs (Debian's
    /// build picks `Prescott` on this machine kind, ~4× slower; `Haswell`, which some environments force, measured
    /// 1.8× slower per training step than `SkylakeX` here). `nil` when the kernel fits the CPU.
    public static func kernelWarning() -> String? {
        let core = coreName
        let generic: Set<String> = ["Prescott", "Core2", "Nehalem", "Atom", "Penryn", "Dunnington", "Katmai",
                                    "Coppermine", "Northwood", "Banias", "Sandybridge", "Barcelona", "Opteron",
                                    "unknown"]
        let avx2: Set<String> = ["Haswell", "Zen", "Excavator", "Steamroller", "Piledriver", "Bulldozer"]
        let flags = cpuFlags
        let hasAVX512 = ["avx512f", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(flags.contains)
        let want: String
        if hasAVX512 && (generic.contains(core) || avx2.contains(core)) { want = "SkylakeX" }
        else if flags.contains("avx2") && flags.contains("fma") && generic.contains(core) { want = "Haswell" }
        else { return nil }
        return "OpenBLAS is running its '\(core)' kernel on a CPU with "
            + (want == "SkylakeX" ? "AVX-512" : "AVX2")
            + "; set OPENBLAS_CORETYPE=\(want) before starting (the launch/ scripts do) "
            + "for 2-4× faster GEMMs"
    }
}
