import Foundation
import TestHelpers
import Training
import XCTest

final class CrossEntropyTests: XCTestCase {
    /// Loss against a hand-computed value, gradient against central differences of that formula in Double.
    func testLossAndGradient() {
        let logits: [Float] = [1, 2, 3, -1, 0.5, 0.25]
        let labels: [Int32] = [2, 0]
        var grad = [Float](repeating: 0, count: 6)
        let (loss, correct) = crossEntropy(logits: logits, labels: labels, rows: 2, classes: 3, dLogits: &grad)
        func ref(_ z: [Double]) -> Double {
            var total = 0.0
            for i in 0..<2 {
                let row = Array(z[(i * 3)..<(i * 3 + 3)])
                total += -log(exp(row[Int(labels[i])]) / row.map(exp).reduce(0, +))
            }
            return total / 2
        }
        let z = logits.map(Double.init)
        XCTAssertEqual(loss, ref(z), accuracy: 1e-6)
        XCTAssertEqual(correct, 1)  // row 0 predicts 2 (right), row 1 predicts 1 (wrong)
        for i in 0..<6 {
            var up = z, down = z
            up[i] += 1e-6; down[i] -= 1e-6
            XCTAssertEqual(Double(grad[i]), (ref(up) - ref(down)) / 2e-6, accuracy: 1e-5, "dlogits[\(i)]")
        }
    }
}

final class AdamWTests: XCTestCase {
    /// Two steps against the update written out by hand (PyTorch AdamW's formula).
    func testMatchesTheFormula() {
        var p: [Float] = [1, -2], m: [Float] = [0, 0], v: [Float] = [0, 0]
        let opt = AdamW(lr: 0.1, weightDecay: 0.5)
        let grads: [[Float]] = [[0.5, -1], [0.25, 2]]
        var ep = [1.0, -2.0], em = [0.0, 0.0], ev = [0.0, 0.0]
        for (t, g) in grads.enumerated() {
            opt.step(&p, g, m: &m, v: &v, count: 2, t: t + 1)
            for i in 0..<2 {
                em[i] = 0.9 * em[i] + 0.1 * Double(g[i])
                ev[i] = 0.999 * ev[i] + 0.001 * Double(g[i]) * Double(g[i])
                let mh = em[i] / (1 - pow(0.9, Double(t + 1))), vh = ev[i] / (1 - pow(0.999, Double(t + 1)))
                ep[i] = ep[i] * (1 - 0.1 * 0.5) - 0.1 * mh / (vh.squareRoot() + 1e-8)
            }
        }
        for i in 0..<2 { XCTAssertEqual(Double(p[i]), ep[i], accuracy: 1e-6) }
    }
}

final class LinearProbeTests: XCTestCase {
    /// Three Gaussian blobs far apart: a linear probe must classify held-out points perfectly; with the labels
    /// shuffled against the points it must not.
    func testSeparatesBlobs() {
        var state: UInt64 = 42
        func noise() -> Float {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(state >> 40) / Float(1 << 24) - 0.5
        }
        let centers: [[Float]] = [[4, 0, 0, 1], [0, 4, 0, -1], [0, 0, 4, 0]]
        func sample(_ n: Int) -> ([Float], [Int32]) {
            var x: [Float] = [], y: [Int32] = []
            for i in 0..<n { let c = i % 3; x += centers[c].map { $0 + noise() }; y.append(Int32(c)) }
            return (x, y)
        }
        let (trainX, trainY) = sample(90), (testX, testY) = sample(60)
        let (probe, loss) = LinearProbe.fit(x: trainX, labels: trainY, features: 4, classes: 3)
        XCTAssertLessThan(loss, 0.05)
        XCTAssertEqual(probe.accuracy(testX, labels: testY), 1.0)
        let shuffled = trainY.enumerated().map { Int32(($0.offset * 7 / 3) % 3) }
        let (bad, _) = LinearProbe.fit(x: trainX, labels: shuffled, features: 4, classes: 3)
        XCTAssertLessThan(bad.accuracy(testX, labels: testY), 0.9)
        let selected = LinearProbe.fitSelectingWeightDecay(x: trainX, labels: trainY, features: 4, classes: 3)
        XCTAssertEqual(selected.probe.accuracy(testX, labels: testY), 1.0)
        XCTAssertEqual(selected.validation.count, 6)
    }
}

final class ClassifierHeadTests: XCTestCase {
    /// Head weight, bias and feature gradients of mean cross-entropy against central differences in Double.
    func testGradientsAgainstFiniteDifferences() throws {
        let classes = 3, hidden = 4, batch = 2, tokens = 1
        let head = try ClassifierHead(classes: classes, hidden: hidden, seed: 7)
        var rng = SplitMix64(seed: 1)
        let states = (0..<(batch * tokens * hidden)).map { _ in Float(rng.uniform(-1, 1)) }
        let labels: [Int32] = [2, 0]
        var logits = [Float](repeating: 0, count: batch * classes), dLogits = logits
        head.forward(&logits, features: states, batch: batch)
        _ = crossEntropy(logits: logits, labels: labels, rows: batch, classes: classes, dLogits: &dLogits)
        let grads = try head.makeStore()
        var dStates = [Float](repeating: 0, count: states.count)
        head.backward(dLogits, features: states, batch: batch, grads: grads, dFeatures: &dStates)

        let w0 = Array(head.params.buffer("head.weight")).map(Double.init), b0 = Array(head.params.buffer("head.bias")).map(Double.init)
        func loss(_ w: [Double], _ b: [Double], _ s: [Double]) -> Double {
            var total = 0.0
            for i in 0..<batch {
                let z = (0..<classes).map { c in b[c] + (0..<hidden).reduce(0.0) { $0 + w[c * hidden + $1] * s[i * tokens * hidden + $1] } }
                let m = z.max()!
                total += -(z[Int(labels[i])] - m - log(z.map { exp($0 - m) }.reduce(0, +)))
            }
            return total / Double(batch)
        }
        let s0 = states.map(Double.init)
        let fdW = finiteDifferences(w0) { loss($0, b0, s0) }, fdB = finiteDifferences(b0) { loss(w0, $0, s0) }
        let fdS = finiteDifferences(s0) { loss(w0, b0, $0) }
        XCTAssertLessThanOrEqual(worstRatio(Array(grads.buffer("head.weight")).map(Double.init), fdW, atol: 1e-5, rtol: 1e-3).ratio, 1)
        XCTAssertLessThanOrEqual(worstRatio(Array(grads.buffer("head.bias")).map(Double.init), fdB, atol: 1e-5, rtol: 1e-3).ratio, 1)
        XCTAssertLessThanOrEqual(worstRatio(dStates.map(Double.init), fdS, atol: 1e-5, rtol: 1e-3).ratio, 1)
    }

    /// The zero-shot head's logits are exp(scale) · cos(image, class text), CLIP's `logits_per_image`.
    func testZeroShotHeadIsScaledCosine() throws {
        let text: [Float] = [3, 0, 4, /**/ 0, -2, 0]   // two classes, dim 3, not normalized
        let head = try ClassifierHead.zeroShot(textEmbeddings: text, classes: 2, logitScale: log(100))
        let image: [Float] = [0.6, 0.8, 0]             // unit length
        var logits = [Float](repeating: 0, count: 2)
        head.forward(&logits, features: image, batch: 1)
        XCTAssertEqual(Double(logits[0]), 100 * (0.6 * 0.6), accuracy: 1e-4)
        XCTAssertEqual(Double(logits[1]), 100 * -0.8, accuracy: 1e-4)
        XCTAssertThrowsError(try ClassifierHead.zeroShot(textEmbeddings: [1, 2, 3], classes: 2, logitScale: 0))
    }
}
