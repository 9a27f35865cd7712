import CAllocationCounter
import Foundation
import Glibc
import XCTest

/// The counter itself: it sees the allocations of the Swift runtime, the standard library, Foundation, libc and
/// other threads, and nothing when nothing allocates.
final class AllocationCounterTests: XCTestCase {
    final class Box { var value = 0 }
    var sink: AnyObject?
    var array: [Int] = []
    var text = ""

    func testMallocIsInterposed() {
        XCTAssertEqual(allocation_counter_is_interposed(), 1,
                       "the dynamic linker does not resolve malloc to the counter's: every count would be 0")
    }

    func testAnEmptyLoopDoesNotAllocate() {
        var x = 0
        let n = allocations { for i in 0..<10_000 { x &+= i &* i } }
        XCTAssertEqual(n, 0)
        XCTAssertNotEqual(x, 1)
    }

    func testSwiftRuntimeAllocationsAreCounted() {
        XCTAssertGreaterThanOrEqual(allocations { sink = Box() }, 1, "class instance (swift_allocObject)")
        XCTAssertGreaterThanOrEqual(allocations { array = Array(repeating: 7, count: 100) }, 1, "non-empty Array")
        XCTAssertGreaterThanOrEqual(allocations { text = String(repeating: "long string ", count: 4) }, 1,
                                    "a String longer than 15 UTF-8 bytes")
        XCTAssertEqual(allocations { array = [] }, 0, "the empty array is a static singleton")
        XCTAssertEqual(allocations { text = "short" }, 0, "small strings live inline")
    }

    func testFoundationAllocationsAreCounted() throws {
        var data = Data()
        XCTAssertGreaterThanOrEqual(try allocations { data = try JSONEncoder().encode([1, 2, 3]) }, 1)
        XCTAssertEqual(data.count, 7)
    }

    /// Where the allocated blocks go: stored in the test case, so that the optimizer cannot elide an
    /// allocation whose block is freed unused.
    var pointer: UnsafeMutableRawPointer?

    func testEveryEntryPointIsCounted() {
        func check(_ what: String, _ allocate: () -> UnsafeMutableRawPointer?) {
            // Exactly one on this thread: other threads (dispatch, OpenBLAS) may allocate in the same window.
            let all = allocations { pointer = allocate() }
            XCTAssertEqual(all - allocation_counter_other_threads(), 1, what)
            XCTAssertNotNil(pointer, what)
            free(pointer)
        }
        let text: StaticString = "inside libc"   // (a String would allocate its C-string copy)
        let cString = UnsafeRawPointer(text.utf8Start).assumingMemoryBound(to: CChar.self)
        check("libc's own calls to malloc (strdup)") { UnsafeMutableRawPointer(strdup(cString)) }
        check("malloc") { malloc(10) }
        check("calloc") { calloc(4, 4) }
        check("realloc") { realloc(nil, 32) }
        check("aligned_alloc") { aligned_alloc(64, 128) }
        var rc: Int32 = -1
        check("posix_memalign") {
            var p: UnsafeMutableRawPointer?
            rc = posix_memalign(&p, 64, 128)
            return p
        }
        XCTAssertEqual(rc, 0)
        XCTAssertEqual(Int(bitPattern: pointer) % 64, 0)
    }

    func testAllocationsOnOtherThreadsAreCounted() {
        let go = DispatchSemaphore(value: 0), done = DispatchSemaphore(value: 0)
        let kept = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: 1)
        defer { kept.deallocate() }
        let thread = Thread {
            go.wait()
            kept.pointee = malloc(100)   // stored before it is freed: a free(malloc(n)) pair may be optimized away
            free(kept.pointee)
            done.signal()
        }
        thread.start()
        let n = allocations {
            go.signal()
            done.wait()
        }
        XCTAssertGreaterThanOrEqual(n, 1)
        XCTAssertGreaterThanOrEqual(allocation_counter_other_threads(), 1)
    }
}
