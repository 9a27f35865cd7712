import Foundation

/// AdamW (Loshchilov & Hutter) on one flat tensor, PyTorch's `torch.optim.AdamW` update:
/// m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²;  p ← p − lr·wd·p − lr · (m / (1−β1ᵗ)) / (√(v / (1−β2ᵗ)) + ε).
/// Defaults are PyTorch's (β1 0.9, β2 0.999, ε 1e-8, weight decay 0.01). `t` counts this tensor's own steps,
/// so a tensor that starts training late is bias-corrected from its own first step.
public struct AdamW {
    public var lr: Float
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var eps: Float = 1e-8
    public var weightDecay: Float = 0.01

    public init(lr: Float, weightDecay: Float = 0.01) {
        self.lr = lr
        self.weightDecay = weightDecay
    }

    /// One update of `count` parameters with gradient `g`, moments `m`, `v`, at this tensor's step `t` (≥ 1).
    public func step(_ p: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>, m: UnsafeMutablePointer<Float>,
                     v: UnsafeMutablePointer<Float>, count: Int, t: Int, lr: Float? = nil) {
        let lr = lr ?? self.lr
        let c1 = 1 - Float(pow(Double(beta1), Double(t))), c2 = 1 - Float(pow(Double(beta2), Double(t)))
        let decay = 1 - lr * weightDecay
        for i in 0..<count {
            m[i] = beta1 * m[i] + (1 - beta1) * g[i]
            v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i]
            p[i] = p[i] * decay - lr * (m[i] / c1) / ((v[i] / c2).squareRoot() + eps)
        }
    }
}
