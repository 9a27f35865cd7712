import CKernels
import Foundation
import XCTest

final class DispatchTests: XCTestCase {
    func testSetISA() {
        defer { XCTAssertEqual(ck_set_isa(nil), 0) }
        XCTAssertEqual(ck_set_isa("scalar"), 0)
        XCTAssertEqual(String(cString: ck_isa()), "scalar")
        XCTAssertEqual(ck_set_isa("sse9"), -1)
        XCTAssertEqual(ck_set_isa(""), -1)
        XCTAssertEqual(String(cString: ck_isa()), "scalar", "a failed ck_set_isa must not change the dispatch")

        // The default (no CK_ISA in the environment) is the best level the CPU supports.
        let supported = ISA.all.filter { ck_set_isa($0) == 0 }
        XCTAssertEqual(supported.first, "scalar")
        XCTAssertEqual(ck_set_isa(nil), 0)
        if ProcessInfo.processInfo.environment["CK_ISA"] == nil {
            XCTAssertEqual(String(cString: ck_isa()), supported.last)
        }
        print("CKernels ISAs supported here: \(supported); default: \(String(cString: ck_isa()))")
    }
}
