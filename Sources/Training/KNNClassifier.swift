import Foundation

/// Weighted k-nearest-neighbour classification on frozen features — DINO's kNN evaluation (Caron et al. 2021,
/// `eval_knn.py`), which needs no training and so measures what the features themselves still separate.
///
/// Exact definition: memory rows `m_j` (labels `y_j`) and query rows `q_i` are L2-normalised (a zero row stays
/// zero); `s_ij = q̂_i · m̂_j` (cosine similarity, accumulated in Double). For query `i`, the `k` memory rows of
/// largest `s_ij` are its neighbours (ties: the lower memory index first; fewer than `k` rows: all of them); each
/// votes for its label with weight `exp(s_ij / T)`; the prediction is the class of largest summed weight (ties:
/// the lower class).
///
/// Why k = 20 and T = 0.07: DINO's defaults (its paper reports k = 20 as the best of 10, 20, 100, 200 on ImageNet,
/// and T = 0.07 is the temperature of its contrastive baselines); a small T makes the nearest neighbours dominate.
public struct KNNClassifier {
    public let dim: Int
    public let classes: Int
    public let k: Int
    public let temperature: Double
    /// Normalised memory, [rows, dim].
    let memory: [Double]
    let labels: [Int32]

    public static let defaultK = 20
    public static let defaultTemperature = 0.07

    /// `memory`: [labels.count, dim] features; `labels` in `0 ..< classes`.
    public init(memory: [Float], labels: [Int32], dim: Int, classes: Int, k: Int = defaultK,
                temperature: Double = defaultTemperature) {
        precondition(dim > 0 && memory.count == labels.count * dim && k > 0 && temperature > 0 && classes > 0,
                     "KNNClassifier: shapes or settings")
        self.dim = dim; self.classes = classes; self.k = k; self.temperature = temperature; self.labels = labels
        self.memory = Self.normalized(memory, dim: dim)
    }

    static func normalized(_ x: [Float], dim: Int) -> [Double] {
        var out = x.map(Double.init)
        for r in 0..<(x.count / dim) {
            var ss = 0.0
            for j in 0..<dim { ss += out[r * dim + j] * out[r * dim + j] }
            let inv = ss > 0 ? 1 / ss.squareRoot() : 0
            for j in 0..<dim { out[r * dim + j] *= inv }
        }
        return out
    }

    /// The predicted class of every query row ([rows, dim]).
    public func predict(_ queries: [Float]) -> [Int] {
        precondition(queries.count % dim == 0, "KNNClassifier.predict: queries are not [rows, \(dim)]")
        let q = Self.normalized(queries, dim: dim)
        let rows = queries.count / dim, n = labels.count, kk = min(k, n)
        var sims = [Double](repeating: 0, count: n)
        var topSim = [Double](repeating: 0, count: kk), topIdx = [Int](repeating: 0, count: kk)
        var votes = [Double](repeating: 0, count: classes)
        var out = [Int](repeating: 0, count: rows)
        for i in 0..<rows {
            for j in 0..<n {
                var s = 0.0
                for d in 0..<dim { s += q[i * dim + d] * memory[j * dim + d] }
                sims[j] = s
            }
            // Top-k by insertion: a later index enters only with a strictly larger similarity (ties: lower index).
            var filled = 0
            for j in 0..<n {
                let s = sims[j]
                if filled == kk && s <= topSim[kk - 1] { continue }
                var p = filled == kk ? kk - 1 : filled
                if filled < kk { filled += 1 }
                while p > 0 && topSim[p - 1] < s { topSim[p] = topSim[p - 1]; topIdx[p] = topIdx[p - 1]; p -= 1 }
                topSim[p] = s; topIdx[p] = j
            }
            for c in 0..<classes { votes[c] = 0 }
            for t in 0..<filled { votes[Int(labels[topIdx[t]])] += exp(topSim[t] / temperature) }
            var best = 0
            for c in 1..<max(classes, 1) where votes[c] > votes[best] { best = c }
            out[i] = best
        }
        return out
    }

    /// Fraction of queries predicted as their label.
    public func accuracy(_ queries: [Float], labels truth: [Int32]) -> Double {
        let p = predict(queries)
        precondition(p.count == truth.count, "KNNClassifier.accuracy: \(p.count) queries, \(truth.count) labels")
        var correct = 0
        for i in 0..<p.count where p[i] == Int(truth[i]) { correct += 1 }
        return Double(correct) / Double(max(p.count, 1))
    }
}
