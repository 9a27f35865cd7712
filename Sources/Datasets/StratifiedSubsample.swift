import Tensors

/// A seeded stratified subsample of `count` of the images labelled `labels` (classes `0 ..< numClasses`): the
/// class proportions kept as closely as whole numbers allow, so an evaluation on the subsample estimates the
/// full set's accuracy without being skewed towards the classes a file happens to list first.
///
/// Exact definition: with `N = labels.count` and `n_c` images of class `c`:
///  - `count >= N`: every index, `0 ..< N`;
///  - otherwise class `c` gets `q_c = ⌊count · n_c / N⌋` images, and the `count − Σ q_c` left over go one each to
///    the classes with the largest remainders `count · n_c mod N` (ties: the lower class first) — the
///    largest-remainder method; class `c`'s images are its indices `I_c` (ascending) at the first `q_c` positions
///    of `SeededRandom(seed: seed, stream: "subsample-\(c)").permutation(n_c)`.
/// The result is sorted ascending. One stream per class: a class's choice does not depend on the other classes.
public func stratifiedSubsample(labels: [Int32], numClasses: Int, count: Int, seed: UInt64) -> [Int] {
    let n = labels.count
    guard count < n else { return Array(0..<n) }
    guard count > 0, numClasses > 0 else { return [] }
    var byClass = [[Int]](repeating: [], count: numClasses)
    for (i, l) in labels.enumerated() where l >= 0 && Int(l) < numClasses { byClass[Int(l)].append(i) }
    var quota = byClass.map { count * $0.count / n }
    let remainders = byClass.map { count * $0.count % n }
    var left = count - quota.reduce(0, +)
    for c in (0..<numClasses).sorted(by: { remainders[$0] != remainders[$1] ? remainders[$0] > remainders[$1] : $0 < $1 })
    where left > 0 && remainders[c] > 0 {
        quota[c] += 1; left -= 1
    }
    var out: [Int] = []
    for c in 0..<numClasses {
        var rng = SeededRandom(seed: seed, stream: "subsample-\(c)")
        for k in rng.permutation(byClass[c].count).prefix(quota[c]) { out.append(byClass[c][k]) }
    }
    return out.sorted()
}
