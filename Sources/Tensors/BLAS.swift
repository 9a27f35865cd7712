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

    /// A warning when OpenBLAS fell back to a generic kernel on a CPU that has AVX-512 or AVX2
    /// (OpenBLAS 0.3.21 does not recognise some recent Xeons and picks `Prescott`, ~4× slower).
    /// `nil` when the kernel looks right.
    public static func kernelWarning() -> String? {
        let core = coreName
        let generic: Set<String> = ["Prescott", "Core2", "Nehalem", "Atom", "Penryn", "Dunnington", "Katmai",
                                    "Coppermine", "Northwood", "Banias", "Sandybridge", "unknown"]
        guard generic.contains(core) else { return nil }
        let flags = cpuFlags
        let want: String
        if flags.contains("avx512f") && flags.contains("avx512bw") { want = "SkylakeX" }
        else if flags.contains("avx2") && flags.contains("fma") { want = "Haswell" }
        else { return nil }
        return "OpenBLAS is running its generic '\(core)' kernel on a CPU with "
            + (want == "SkylakeX" ? "AVX-512" : "AVX2")
            + "; set OPENBLAS_CORETYPE=\(want) before starting (the launch/ scripts do) for ~4× faster GEMMs"
    }
}
