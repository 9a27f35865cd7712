import Datasets
import Tensors
import XCTest

final class StratifiedSubsampleTests: XCTestCase {
    func testQuotasAndDeterminism() {
        // 6 of class 0, 3 of class 1, 1 of class 2 (N = 10), count 5:
        // exact shares 3, 1.5, 0.5 → floors 3, 1, 0 (4), remainders 0, 5, 5 (of 10) → the one left over goes to the
        // lower of the tied classes, 1.
        let labels: [Int32] = [0, 1, 0, 0, 2, 1, 0, 0, 1, 0]
        let s = stratifiedSubsample(labels: labels, numClasses: 3, count: 5, seed: 3)
        XCTAssertEqual(s, s.sorted())
        XCTAssertEqual(s.map { labels[$0] }.filter { $0 == 0 }.count, 3)
        XCTAssertEqual(s.map { labels[$0] }.filter { $0 == 1 }.count, 2)
        XCTAssertEqual(s.map { labels[$0] }.filter { $0 == 2 }.count, 0)
        XCTAssertEqual(s, stratifiedSubsample(labels: labels, numClasses: 3, count: 5, seed: 3))
        // Class 1's two from its own stream: its indices [1, 5, 8] at the first 2 positions of the permutation.
        var rng = SeededRandom(seed: 3, stream: "subsample-1")
        let p = rng.permutation(3)
        XCTAssertEqual(Set(s.filter { labels[$0] == 1 }), Set([[1, 5, 8][p[0]], [1, 5, 8][p[1]]]))
        XCTAssertEqual(stratifiedSubsample(labels: labels, numClasses: 3, count: 10, seed: 3), Array(0..<10))
        XCTAssertEqual(stratifiedSubsample(labels: labels, numClasses: 3, count: 99, seed: 3), Array(0..<10))
    }

    func testSeedsDiffer() {
        let labels = (0..<200).map { Int32($0 % 4) }
        let a = stratifiedSubsample(labels: labels, numClasses: 4, count: 40, seed: 0)
        let b = stratifiedSubsample(labels: labels, numClasses: 4, count: 40, seed: 1)
        XCTAssertEqual(a.count, 40)
        XCTAssertEqual((0..<4).map { c in a.filter { labels[$0] == c }.count }, [10, 10, 10, 10])
        XCTAssertNotEqual(a, b)
    }
}
