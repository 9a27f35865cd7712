import CKernels
import Foundation
import XCTest
@_exported import TestHelpers

#if canImport(Glibc)
import Glibc
#endif

/// Float storage whose last element sits right before an inaccessible page, so a kernel that reads or writes
/// even one float past the end crashes the test instead of passing silently.
final class GuardedBuffer {
    let count: Int
    let pointer: UnsafeMutablePointer<Float>
    private let base: UnsafeMutableRawPointer
    private let mappedBytes: Int

    init(count: Int, fill: Float = 0) {
        let page = Int(getpagesize())
        let dataBytes = max(1, (count * 4 + page - 1) / page) * page
        mappedBytes = dataBytes + page
        let m = mmap(nil, mappedBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let m, m != UnsafeMutableRawPointer(bitPattern: -1) else { fatalError("mmap failed") }
        precondition(mprotect(m + dataBytes, page, PROT_NONE) == 0, "mprotect failed")
        base = m
        self.count = count
        pointer = (m + dataBytes - count * 4).bindMemory(to: Float.self, capacity: max(count, 1))
        pointer.update(repeating: fill, count: count)
    }

    convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: values.count) }
    }

    deinit { munmap(base, mappedBytes) }

    var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }

    subscript(i: Int) -> Float {
        get { pointer[i] }
        set { pointer[i] = newValue }
    }
}

enum ISA {
    static let all = ["scalar", "avx2", "avx512f"]
}

extension XCTestCase {
    /// Runs `body` once per instruction set this CPU supports (forcing the dispatch with `ck_set_isa`), then
    /// restores the default choice. The scalar path must always be available.
    func forEachISA(file: StaticString = #filePath, line: UInt = #line, _ body: (String) throws -> Void) rethrows {
        defer { XCTAssertEqual(ck_set_isa(nil), 0, file: file, line: line) }
        for name in ISA.all {
            let rc = ck_set_isa(name)
            if rc == 1 && name != "scalar" { continue }   // CPU lacks it: nothing to test here
            XCTAssertEqual(rc, 0, "ck_set_isa(\(name))", file: file, line: line)
            guard rc == 0 else { continue }
            XCTAssertEqual(String(cString: ck_isa()), name, file: file, line: line)
            try body(name)
        }
    }
}

/// Compares `got` against a Double reference with a per-element tolerance; fails with the worst offender.
/// Returns the largest |error| / tolerance seen (≤ 1 when passing), for the printed summary.
@discardableResult
func assertClose(_ got: UnsafePointer<Float>, _ ref: [Double], tolerance: (Int) -> Double, _ what: @autoclosure () -> String,
                 file: StaticString = #filePath, line: UInt = #line) -> Double {
    var maxRatio = 0.0
    var worst = (index: -1, ratio: 1.0)
    var bad = 0
    for i in 0..<ref.count {
        let g = Double(got[i])
        let err = abs(g - ref[i])
        if !(err <= tolerance(i)) {   // also catches NaN
            bad += 1
            let ratio = err / tolerance(i)
            if worst.index < 0 || !(ratio <= worst.ratio) { worst = (i, ratio) }
        }
        if err / tolerance(i) > maxRatio { maxRatio = err / tolerance(i) }
    }
    if bad > 0 {
        let i = worst.index
        XCTFail("\(what()): \(bad) of \(ref.count) out of tolerance; worst [\(i)] got \(got[i]) want \(ref[i]) "
                + "(err \(abs(Double(got[i]) - ref[i])), tol \(tolerance(i)))", file: file, line: line)
    }
    return maxRatio
}

/// One line per kernel: the largest error/tolerance ratio per ISA.
func printSummary(_ kernel: String, _ worst: [String: Double]) {
    let parts = worst.sorted { $0.key < $1.key }.map { "\($0.key) \(String(format: "%.3f", $0.value))" }
    print("\(kernel): max error/tolerance = \(parts.joined(separator: ", "))")
}
