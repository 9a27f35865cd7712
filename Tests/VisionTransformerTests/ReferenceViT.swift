import Foundation
@_exported import TestHelpers
@testable import VisionTransformer

/// An independent, deliberately naive Double-precision ViT written straight from the definitions (plain loops,
/// no BLAS, no shared code with the library): the reference for finite differences and forward checks.
enum Ref {
    static func layerNorm(_ x: [Double], rows: Int, cols: Int, gamma: [Double], beta: [Double], eps: Double) -> [Double] {
        var y = [Double](repeating: 0, count: x.count)
        for r in 0..<rows {
            let row = Array(x[(r * cols)..<((r + 1) * cols)])
            let mean = row.reduce(0, +) / Double(cols)
            let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(cols)
            for c in 0..<cols { y[r * cols + c] = (row[c] - mean) / (variance + eps).squareRoot() * gamma[c] + beta[c] }
        }
        return y
    }

    /// y = x Wᵀ + b, W [out, in].
    static func linear(_ x: [Double], rows: Int, inF: Int, outF: Int, w: [Double], b: [Double]?) -> [Double] {
        var y = [Double](repeating: 0, count: rows * outF)
        for r in 0..<rows {
            for o in 0..<outF {
                var s = b?[o] ?? 0
                for i in 0..<inF { s += x[r * inF + i] * w[o * inF + i] }
                y[r * outF + o] = s
            }
        }
        return y
    }

    static func gelu(_ x: [Double]) -> [Double] { x.map { 0.5 * $0 * (1 + erf($0 / 2.0.squareRoot())) } }

    /// x·σ(1.702·x) (OpenAI CLIP).
    static func quickGELU(_ x: [Double]) -> [Double] { x.map { $0 / (1 + exp(-1.702 * $0)) } }

    /// Per batch b and head h: softmax(q_h k_hᵀ / √hd) v_h; q, k, v [B·T, H·hd].
    static func attention(q: [Double], k: [Double], v: [Double], batch: Int, tokens: Int, heads: Int, headDim: Int) -> [Double] {
        let w = heads * headDim
        var out = [Double](repeating: 0, count: q.count)
        for b in 0..<batch {
            for h in 0..<heads {
                for i in 0..<tokens {
                    var scores = [Double](repeating: 0, count: tokens)
                    for j in 0..<tokens {
                        var s = 0.0
                        for e in 0..<headDim { s += q[(b * tokens + i) * w + h * headDim + e] * k[(b * tokens + j) * w + h * headDim + e] }
                        scores[j] = s / Double(headDim).squareRoot()
                    }
                    let m = scores.max()!
                    let ex = scores.map { exp($0 - m) }
                    let z = ex.reduce(0, +)
                    for e in 0..<headDim {
                        var s = 0.0
                        for j in 0..<tokens { s += ex[j] / z * v[(b * tokens + j) * w + h * headDim + e] }
                        out[(b * tokens + i) * w + h * headDim + e] = s
                    }
                }
            }
        }
        return out
    }

    /// Keys' cubic kernel with a = −0.75 as a function of the signed distance.
    static func cubic(_ d: Double) -> Double {
        let a = -0.75, x = abs(d)
        if x <= 1 { return (a + 2) * x * x * x - (a + 3) * x * x + 1 }
        if x < 2 { return a * x * x * x - 5 * a * x * x + 8 * a * x - 4 * a }
        return 0
    }

    /// PyTorch bicubic (align_corners=False) of a [inR, inC, dim] grid to [outR, outC, dim], written as a direct
    /// 2-D sum over the 4×4 neighbourhood with border-clamped indices.
    static func bicubic(_ src: [Double], inR: Int, inC: Int, outR: Int, outC: Int, dim: Int) -> [Double] {
        var out = [Double](repeating: 0, count: outR * outC * dim)
        for i in 0..<outR {
            let y = (Double(i) + 0.5) * Double(inR) / Double(outR) - 0.5
            let y0 = Int(floor(y))
            for j in 0..<outC {
                let x = (Double(j) + 0.5) * Double(inC) / Double(outC) - 0.5
                let x0 = Int(floor(x))
                for dy in -1...2 {
                    for dx in -1...2 {
                        let wgt = cubic(y - Double(y0 + dy)) * cubic(x - Double(x0 + dx))
                        let sy = min(max(y0 + dy, 0), inR - 1), sx = min(max(x0 + dx, 0), inC - 1)
                        for d in 0..<dim { out[(i * outC + j) * dim + d] += wgt * src[(sy * inC + sx) * dim + d] }
                    }
                }
            }
        }
        return out
    }

    /// Stride-P convolution, weight [D, C, P, P]; output [B·(H/P)·(W/P), D] in row-major patch order.
    static func patchConv(_ px: [Double], batch: Int, channels: Int, height: Int, width: Int, patch: Int,
                          w: [Double], b: [Double]?, dim: Int) -> [Double] {
        let gr = height / patch, gc = width / patch
        var out = [Double](repeating: 0, count: batch * gr * gc * dim)
        for n in 0..<batch { for i in 0..<gr { for j in 0..<gc { for o in 0..<dim {
            var s = b?[o] ?? 0
            for c in 0..<channels { for di in 0..<patch { for dj in 0..<patch {
                s += w[((o * channels + c) * patch + di) * patch + dj]
                    * px[((n * channels + c) * height + i * patch + di) * width + j * patch + dj]
            } } }
            out[((n * gr + i) * gc + j) * dim + o] = s
        } } } }
        return out
    }

    /// A LoRA block for the reference: y += gate · scale · (x Aᵀ) Bᵀ, A [r, in], B [out, r].
    struct LoRA {
        var a: [Double], b: [Double], gate: Double
    }

    /// x Wᵀ + b, plus the LoRA block registered for `path`, if any.
    static func adapted(_ x: [Double], rows: Int, inF: Int, outF: Int, w: [Double], b: [Double], path: String,
                        lora: [String: LoRA], rank: Int, scale: Double) -> [Double] {
        var y = linear(x, rows: rows, inF: inF, outF: outF, w: w, b: b)
        if let l = lora[path] {
            let h = linear(x, rows: rows, inF: inF, outF: rank, w: l.a, b: nil)
            let u = linear(h, rows: rows, inF: rank, outF: outF, w: l.b, b: nil)
            for i in 0..<y.count { y[i] += l.gate * scale * u[i] }
        }
        return y
    }

    /// The whole model: parameters by Hugging Face name, pixels [B, C, H, W] → last_hidden_state [B, T, D],
    /// with optional LoRA blocks keyed by module path (e.g. `encoder.layer.0.mlp.fc1`).
    static func vit(_ p: [String: [Double]], config c: ViTConfig, pixels: [Double], batch: Int, height: Int, width: Int,
                    lora: [String: LoRA] = [:], rank: Int = 0, scale: Double = 0) -> [Double] {
        let d = c.hiddenSize, gr = height / c.patchSize, gc = width / c.patchSize, t = 1 + gr * gc, n = batch * t
        let eps = Double(c.layerNormEps)
        let patches = patchConv(pixels, batch: batch, channels: c.channels, height: height, width: width,
                                patch: c.patchSize, w: p[ViTParameterNames.patchWeight]!, b: p[ViTParameterNames.patchBias], dim: d)
        let pos = p[ViTParameterNames.positions]!
        let grid = bicubic(Array(pos[d...]), inR: c.positionGrid, inC: c.positionGrid, outR: gr, outC: gc, dim: d)
        let cls = p[ViTParameterNames.clsToken]!
        var x = [Double](repeating: 0, count: n * d)
        for b in 0..<batch {
            for e in 0..<d { x[b * t * d + e] = cls[e] + pos[e] }
            for q in 0..<(t - 1) { for e in 0..<d { x[(b * t + 1 + q) * d + e] = patches[(b * (t - 1) + q) * d + e] + grid[q * d + e] } }
        }
        if c.preNorm {   // CLIP's ln_pre
            x = layerNorm(x, rows: n, cols: d, gamma: p[ViTParameterNames.preNormWeight]!,
                          beta: p[ViTParameterNames.preNormBias]!, eps: eps)
        }
        for l in 0..<c.numLayers {
            func w(_ s: String) -> [Double] { p["encoder.layer.\(l).\(s)"]! }
            func lin(_ x: [Double], _ module: String, _ inF: Int, _ outF: Int) -> [Double] {
                adapted(x, rows: n, inF: inF, outF: outF, w: w(module + ".weight"), b: w(module + ".bias"),
                        path: "encoder.layer.\(l).\(module)", lora: lora, rank: rank, scale: scale)
            }
            let h1 = layerNorm(x, rows: n, cols: d, gamma: w("norm1.weight"), beta: w("norm1.bias"), eps: eps)
            let q = lin(h1, "attention.attention.query", d, d)
            let k = lin(h1, "attention.attention.key", d, d)
            let v = lin(h1, "attention.attention.value", d, d)
            let ctx = attention(q: q, k: k, v: v, batch: batch, tokens: t, heads: c.numHeads, headDim: c.headDim)
            let a = lin(ctx, "attention.output.dense", d, d)
            let ones = [Double](repeating: 1, count: d)   // no LayerScale (CLIP): a scale of 1
            let ls1 = c.layerScale ? w("layer_scale1.lambda1") : ones, ls2 = c.layerScale ? w("layer_scale2.lambda1") : ones
            for i in 0..<(n * d) { x[i] += ls1[i % d] * a[i] }
            let h2 = layerNorm(x, rows: n, cols: d, gamma: w("norm2.weight"), beta: w("norm2.bias"), eps: eps)
            let pre = lin(h2, "mlp.fc1", d, c.mlpSize)
            let f1 = c.activation == .gelu ? gelu(pre) : quickGELU(pre)
            let f2 = lin(f1, "mlp.fc2", c.mlpSize, d)
            for i in 0..<(n * d) { x[i] += ls2[i % d] * f2[i] }
        }
        return layerNorm(x, rows: n, cols: d, gamma: p[ViTParameterNames.finalNormWeight]!,
                         beta: p[ViTParameterNames.finalNormBias]!, eps: eps)
    }
}

extension Ref {
    /// CLIP's image feature from ``vit``'s output: normalize(class token · projᵀ) per image, [B, E].
    static func clipFeatures(_ out: [Double], _ p: [String: [Double]], config c: ViTConfig, batch: Int, tokens: Int) -> [Double] {
        let d = c.hiddenSize, e = c.projectionDim!
        var y = [Double](repeating: 0, count: batch * e)
        for b in 0..<batch {
            let cls = Array(out[(b * tokens * d)..<(b * tokens * d + d)])
            let z = linear(cls, rows: 1, inF: d, outF: e, w: p[ViTParameterNames.projection]!, b: nil)
            let norm = z.map { $0 * $0 }.reduce(0, +).squareRoot()
            for j in 0..<e { y[b * e + j] = z[j] / norm }
        }
        return y
    }
}

typealias TestRNG = SplitMix64

/// Gives every block a random B in ±0.5 (so every gradient is non-trivial) and the gate `active(index)`, and returns
/// the same blocks for the reference, keyed by module path.
func randomizeForReference(_ adapters: LoRAAdapters, _ rng: inout TestRNG, active: (Int) -> Bool) -> [String: Ref.LoRA] {
    let r = adapters.config.rank
    var ref: [String: Ref.LoRA] = [:]
    for b in adapters.blocks {
        for i in 0..<(b.outFeatures * r) { adapters.b(b)[i] = Float(rng.uniform(-0.5, 0.5)) }
        ref[b.path] = Ref.LoRA(a: Array(UnsafeBufferPointer(start: adapters.a(b), count: r * b.inFeatures)).map(Double.init),
                               b: Array(UnsafeBufferPointer(start: adapters.b(b), count: r * b.outFeatures)).map(Double.init),
                               gate: active(b.index) ? 1 : 0)
    }
    adapters.gates.set(adapters.blocks.indices.map(active))
    return ref
}

/// A tiny ViT with random parameters (LayerNorm weights around 1), and the same values in Double by name.
func randomTinyModel(_ config: ViTConfig, _ rng: inout TestRNG) throws -> (ViTModel, [String: [Double]]) {
    let model = try ViTModel(config: config)
    var params: [String: [Double]] = [:]
    for e in model.params.store.layout.entries {
        var v = rng.array(e.count, -0.5, 0.5)
        if e.name.hasSuffix("norm1.weight") || e.name.hasSuffix("norm2.weight") || e.name.hasSuffix("layernorm.weight") {
            v = v.map { 1 + $0 }
        }
        params[e.name] = v
        _ = model.params.store.buffer(e.name).update(fromContentsOf: v.map(Float.init))
    }
    return (model, params)
}
