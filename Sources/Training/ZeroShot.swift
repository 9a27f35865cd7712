import Foundation
import Tokenizers
import VisionTransformer

/// CLIP's zero-shot classifier recipe: for each class, the text embedding of every prompt template filled with the
/// class name, each normalized, averaged, and normalized again (Radford et al. 2021, `zeroshot_classifier`).
public enum ZeroShot {
    /// Fills `{}` in each template with the class name (a template without `{}` gets the name appended).
    public static func prompts(_ className: String, templates: [String]) -> [String] {
        templates.map { $0.contains("{}") ? $0.replacingOccurrences(of: "{}", with: className) : "\($0) \(className)" }
    }

    /// Class embeddings [classes, E] (unit rows) from `text`.
    public static func classEmbeddings(text: CLIPTextModel, tokenizer: CLIPTokenizer, classNames: [String],
                                       templates: [String]) throws -> [Float] {
        guard !classNames.isEmpty, !templates.isEmpty else {
            throw ViTError.badInput("zero-shot: need at least one class name and one template")
        }
        guard tokenizer.contextLength == text.config.contextLength else {
            throw ViTError.badInput("zero-shot: the tokenizer's context \(tokenizer.contextLength) differs from the "
                + "text tower's \(text.config.contextLength)")
        }
        let e = text.config.projectionDim, k = templates.count
        let ids = classNames.flatMap { name in prompts(name, templates: templates).flatMap { tokenizer.tokenize($0) } }
        let perPrompt = normalizedRows(try text.encode(ids: ids), dim: e)
        var out = [Float](repeating: 0, count: classNames.count * e)
        for c in classNames.indices {
            for t in 0..<k { for j in 0..<e { out[c * e + j] += perPrompt[(c * k + t) * e + j] / Float(k) } }
        }
        return normalizedRows(out, dim: e)
    }

    /// The zero-shot head of `clip` for `classNames` (see ``ClassifierHead/zeroShot(textEmbeddings:classes:logitScale:)``).
    public static func head(clip: CLIPModel, tokenizer: CLIPTokenizer, classNames: [String],
                            templates: [String]) throws -> ClassifierHead {
        let emb = try classEmbeddings(text: clip.text, tokenizer: tokenizer, classNames: classNames, templates: templates)
        return try ClassifierHead.zeroShot(textEmbeddings: emb, classes: classNames.count, logitScale: clip.logitScale)
    }
}

/// The minimum-norm solution X [k, m] of U X = Y for U [n, k] with n ≤ k and full row rank: X = Uᵀ (U Uᵀ)⁻¹ Y,
/// in Double (Cholesky of the n × n Gram matrix). Used to align a text projection with image class means
/// (`selora clip-compose`). Throws when U Uᵀ is not positive definite (rows linearly dependent).
public func minimumNormSolution(u: [Double], rows n: Int, cols k: Int, y: [Double], targets m: Int) throws -> [Double] {
    guard n > 0, n <= k, u.count == n * k, y.count == n * m else {
        throw ViTError.badInput("minimumNormSolution: need U [n, k] with n ≤ k and Y [n, m]; got \(u.count), \(y.count) for n \(n), k \(k), m \(m)")
    }
    var g = [Double](repeating: 0, count: n * n)   // U Uᵀ
    for i in 0..<n { for j in 0...i {
        var s = 0.0
        for t in 0..<k { s += u[i * k + t] * u[j * k + t] }
        g[i * n + j] = s; g[j * n + i] = s
    } }
    for i in 0..<n {   // in-place Cholesky, lower triangle
        for j in 0...i {
            var s = g[i * n + j]
            for t in 0..<j { s -= g[i * n + t] * g[j * n + t] }
            if i == j {
                guard s > 1e-12 * max(1, g[0]) else {
                    throw ViTError.badInput("minimumNormSolution: the rows of U are linearly dependent (pivot \(i))")
                }
                g[i * n + i] = s.squareRoot()
            } else {
                g[i * n + j] = s / g[j * n + j]
            }
        }
    }
    var z = y   // solve (L Lᵀ) Z = Y column by column
    for c in 0..<m {
        for i in 0..<n {
            var s = z[i * m + c]
            for t in 0..<i { s -= g[i * n + t] * z[t * m + c] }
            z[i * m + c] = s / g[i * n + i]
        }
        for i in stride(from: n - 1, through: 0, by: -1) {
            var s = z[i * m + c]
            for t in (i + 1)..<n { s -= g[t * n + i] * z[t * m + c] }
            z[i * m + c] = s / g[i * n + i]
        }
    }
    var x = [Double](repeating: 0, count: k * m)   // Uᵀ Z
    for i in 0..<n { for t in 0..<k {
        let a = u[i * k + t]
        for c in 0..<m { x[t * m + c] += a * z[i * m + c] }
    } }
    return x
}
