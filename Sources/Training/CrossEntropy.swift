import Foundation

/// Mean softmax cross-entropy over a batch, and its gradient w.r.t. the logits.
///
/// loss = −(1/N) Σ_i log softmax(logits_i)[label_i]; dlogits_i = (softmax(logits_i) − onehot(label_i)) / N.
/// Computed max-subtracted, in Double per row. Returns (loss, number of rows whose arg-max equals the label).
public func crossEntropy(logits: UnsafePointer<Float>, labels: UnsafePointer<Int32>, rows: Int, classes: Int,
                         dLogits: UnsafeMutablePointer<Float>?) -> (loss: Double, correct: Int) {
    var total = 0.0, correct = 0
    for i in 0..<rows {
        let z = logits + i * classes
        let best = argmax(z, count: classes)
        let m = Double(z[best])
        var sum = 0.0
        for c in 0..<classes { sum += exp(Double(z[c]) - m) }
        let label = Int(labels[i])
        total += -(Double(z[label]) - m - log(sum))
        if best == label { correct += 1 }
        if let dLogits {
            let g = dLogits + i * classes
            for c in 0..<classes {
                let p = exp(Double(z[c]) - m) / sum
                g[c] = Float((p - (c == label ? 1 : 0)) / Double(rows))
            }
        }
    }
    return (total / Double(max(rows, 1)), correct)
}

/// Index of the largest of `count` values (the first one on ties).
@inline(__always)
public func argmax(_ x: UnsafePointer<Float>, count: Int) -> Int {
    var best = 0
    for c in 1..<count where x[c] > x[best] { best = c }
    return best
}
