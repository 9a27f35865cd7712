import Foundation
import Tensors
import Training
import XCTest

final class KNNClassifierTests: XCTestCase {
    /// Independent reference in Double: every similarity, a full sort by (similarity desc, index asc), the first k,
    /// exp(s/T) votes, the first class of the largest vote.
    static func reference(memory: [Float], labels: [Int32], queries: [Float], dim: Int, classes: Int, k: Int,
                          t: Double) -> [Int] {
        func unit(_ x: ArraySlice<Float>) -> [Double] {
            let v = x.map(Double.init)
            let n = v.map { $0 * $0 }.reduce(0, +).squareRoot()
            return n > 0 ? v.map { $0 / n } : v
        }
        let mem = (0..<labels.count).map { unit(memory[($0 * dim)..<(($0 + 1) * dim)]) }
        return (0..<(queries.count / dim)).map { i in
            let q = unit(queries[(i * dim)..<((i + 1) * dim)])
            let sims = mem.map { m in zip(q, m).map { $0 * $1 }.reduce(0, +) }
            let order = sims.indices.sorted { sims[$0] != sims[$1] ? sims[$0] > sims[$1] : $0 < $1 }
            var votes = [Double](repeating: 0, count: classes)
            for j in order.prefix(k) { votes[Int(labels[j])] += exp(sims[j] / t) }
            return votes.indices.max { votes[$0] < votes[$1] || (votes[$0] == votes[$1] && $0 > $1) } ?? 0
        }
    }

    /// Weighted votes, not a majority: the one near neighbour (s = 1) outvotes two at s = 0.6.
    func testWeightedVoteBeatsMajority() {
        let memory: [Float] = [1, 0, 0.6, 0.8, 0.6, -0.8]
        let knn = KNNClassifier(memory: memory, labels: [0, 1, 1], dim: 2, classes: 2, k: 3)
        XCTAssertEqual(knn.predict([2, 0]), [0])   // e^(1/0.07) > 2·e^(0.6/0.07)
        // At T = 10 the weights are nearly equal and the two class-1 neighbours win.
        XCTAssertEqual(KNNClassifier(memory: memory, labels: [0, 1, 1], dim: 2, classes: 2, k: 3, temperature: 10).predict([2, 0]), [1])
        // k = 1: only the nearest; scaling does not matter (cosine).
        XCTAssertEqual(KNNClassifier(memory: memory, labels: [0, 1, 1], dim: 2, classes: 2, k: 1).predict([0.1, 0.3, 5, 0]), [1, 0])
        XCTAssertEqual(knn.accuracy([2, 0, 0.6, 0.9], labels: [0, 1]), 1)
    }

    func testMatchesBruteForceOnRandomData() {
        var rng = SeededRandom(seed: 7)
        for (n, q, dim, classes, k) in [(200, 60, 16, 5, 20), (30, 40, 3, 4, 7), (10, 5, 8, 3, 20)] {
            let memory = (0..<(n * dim)).map { _ in rng.normal() }
            let labels = (0..<n).map { _ in Int32(rng.next() % UInt64(classes)) }
            let queries = (0..<(q * dim)).map { _ in rng.normal() }
            let got = KNNClassifier(memory: memory, labels: labels, dim: dim, classes: classes, k: k).predict(queries)
            let want = Self.reference(memory: memory, labels: labels, queries: queries, dim: dim, classes: classes, k: k, t: 0.07)
            XCTAssertEqual(got, want, "n \(n), dim \(dim), k \(k)")
            // Not a degenerate case: the predictions use more than one class.
            XCTAssertGreaterThan(Set(want).count, 1)
        }
    }
}
