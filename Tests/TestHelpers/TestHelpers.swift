import Foundation
import Tensors

/// A fixed-seed generator for tests (the library's SplitMix64, ``SeededRandom``), with Double helpers, so every
/// test run sees the same numbers.
public struct SplitMix64 {
    private var rng: SeededRandom
    public init(seed: UInt64) { rng = SeededRandom(seed: seed) }

    public mutating func next() -> UInt64 { rng.next() }

    /// Uniform in [0, 1).
    public mutating func unit() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// Uniform in [lo, hi).
    public mutating func uniform(_ lo: Double = -1, _ hi: Double = 1) -> Double { lo + (hi - lo) * unit() }

    public mutating func uniformFloat(_ lo: Double, _ hi: Double) -> Float { Float(uniform(lo, hi)) }

    /// Standard normal (Box–Muller).
    public mutating func normal() -> Double {
        let u = max(unit(), 0x1p-60), v = unit()
        return (-2 * log(u)).squareRoot() * cos(2 * Double.pi * v)
    }

    public mutating func array(_ n: Int, _ lo: Double = -1, _ hi: Double = 1) -> [Double] {
        (0..<n).map { _ in uniform(lo, hi) }
    }
}

/// Central finite difference of a scalar function at every coordinate, in Double.
public func finiteDifferences(_ x: [Double], h: Double = 1e-5, _ f: ([Double]) -> Double) -> [Double] {
    var x = x
    return (0..<x.count).map { i in
        let keep = x[i]
        x[i] = keep + h; let up = f(x)
        x[i] = keep - h; let down = f(x)
        x[i] = keep
        return (up - down) / (2 * h)
    }
}

/// Largest |a − b| / (atol + rtol·|b|) over the arrays, and where: ≤ 1 means every element is within tolerance.
public func worstRatio(_ a: [Double], _ b: [Double], atol: Double, rtol: Double) -> (ratio: Double, index: Int) {
    precondition(a.count == b.count, "worstRatio: \(a.count) vs \(b.count)")
    var worst = (0.0, -1)
    for i in 0..<a.count {
        let r = abs(a[i] - b[i]) / (atol + rtol * abs(b[i]))
        if r > worst.0 || worst.1 < 0 { worst = (r, i) }
    }
    return worst
}

public func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }

import Datasets
import VisionTransformer

extension ViTConfig {
    /// A 2-block, width-8 ViT with 2×2 patches and a 3×3 position grid: every code path, milliseconds per step.
    public static let tiny = ViTConfig(hiddenSize: 8, numLayers: 2, numHeads: 2, mlpSize: 12, patchSize: 2, channels: 3,
                                       positionGrid: 3, layerNormEps: 1e-6)
}

/// A tiny ViT with seeded random parameters: N(0, 0.3²), LayerNorm weights around 1. `layers`: blocks of the
/// ``ViTConfig/tiny`` shape (2 by default).
public func randomTinyViT(seed: UInt64 = 1, layers: Int = 2) throws -> ViTModel {
    var config = ViTConfig.tiny
    config.numLayers = layers
    let m = try ViTModel(config: config)
    var rng = SeededRandom(seed: seed)
    for e in m.params.store.layout.entries {
        let b = m.params.store.buffer(e.name)
        let around: Float = e.name.contains("norm") && e.name.hasSuffix("weight") ? 1 : 0
        for i in 0..<b.count { b[i] = around + 0.3 * rng.normal() }
    }
    return m
}

/// `count` random 8×8 gray images, labels cycling through `classes`.
public func randomImageSet(count: Int, classes: Int = 3, seed: UInt64 = 5) throws -> ImageDataset {
    var rng = SeededRandom(seed: seed)
    var px: [UInt8] = [], labels: [Int32] = []
    for i in 0..<count {
        for _ in 0..<64 { px.append(UInt8(rng.uniform(0, 255))) }
        labels.append(Int32(i % classes))
    }
    return try ImageDataset(height: 8, width: 8, pixels: px, labels: labels, numClasses: classes)
}
