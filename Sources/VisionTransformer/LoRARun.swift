import Tensors

/// The Linear layers of a transformer block that read one input, so their LoRA blocks share x: q, k and v (the
/// packed [3D, D] in-projection), the attention output, fc1, fc2.
enum LoRAGroup: Int, CaseIterable {
    case qkv, output, fc1, fc2

    var targets: [LoRATarget] {
        switch self {
        case .qkv: return [.query, .key, .value]
        case .output: return [.output]
        case .fc1: return [.fc1]
        case .fc2: return [.fc2]
        }
    }

    /// (in, out) of the group's (packed) weight.
    func features(_ c: ViTConfig) -> (in: Int, out: Int) {
        self == .qkv ? (c.hiddenSize, 3 * c.hiddenSize) : targets[0].features(c)
    }
}

/// The per-shape state of LoRA in a forward/backward: for every block it holds, the saved h = x·Aᵀ [rows, r] the
/// backward needs and (when training) the gradients; scratch (merged weights, g = dy·B, stacked A and dA). Built
/// once per activation shape, like ``ViTActivations``; nothing is allocated while stepping.
///
/// A block adds I · c · B A to its Linear's weight W [out, in] (c = alpha/r, I = the block's gate,
/// ``Gates/mask``). The blocks of one group (``LoRAGroup``: q, k, v share the packed weight and the input) run as:
///
/// Forward, paired with ``backward(layer:group:dy:ldy:x:)``:
///     W' = W + Σ_active c · B A  (rows of each block's target; ``weight(layer:group:base:)``, built per call
///                                   into scratch, W itself when no block of the group is active)
///     y = x W'ᵀ + b               (the caller's Linear, one GEMM: the LoRA term rides in the base GEMM)
///     h = x [A_1; …; A_k]ᵀ        (``forward(layer:group:x:)``, one pass over x for the group, [rows, k·r], saved)
/// Backward, with the caller's Linear computing dx = dy W' (= dy W + Σ_active c · g A) and, per block, g = dy B:
///     ds += c · Σ g ⊙ h           (straight-through: dL/dI passed to s, active or not)
///     if I: dB += c · dyᵀ h;  dA += c · gᵀ x   (the group's dA in one pass over x)
/// The thin products (r columns or r rows) run on ``Kernels/thinRows(_:ldo:_:ldx:_:ldw:rows:k:r:alpha:)`` and
/// ``Kernels/thinOuter(_:lda:transposed:_:lds:_:ldx:rows:r:cols:alpha:partials:)``.
/// A block that does not run (inactive, scores not learned or the gates settled) costs nothing; an inactive block
/// that runs for its score only computes h and g. A and B are never written.
///
/// `blocks` (the blocks that can run in this run; nil: all) sizes the state: a block outside it has no saved h,
/// no gradient and no memory — a settled gate pattern or `lora-last-k`'s last layers hold only their own blocks
/// (at rank 128 on ViT-S, the 72 blocks' gradients alone are 42 MB). Such a block is frozen: if its gate is on
/// it still acts in the forward (its B A rides in W') but gets no gradient.
public final class LoRARun {
    public let adapters: LoRAAdapters
    public let rows: Int
    public let training: Bool
    let saved: FloatBuffer
    /// One allocation, carved into ``merged`` (one region per group), ``gStack`` [rows, 3r], ``aStack`` and
    /// ``dAStack`` [3r, max in], ``bT`` [r, max out] and the thin kernels' per-worker ``partials``.
    let scratch: FloatBuffer
    let merged: [UnsafeMutablePointer<Float>]
    let gStack, aStack, dAStack, bT, partials: UnsafeMutablePointer<Float>
    /// Gradients of A and B (same layout as the parameters), accumulated; nil for inference.
    public let grads: TensorStore?
    /// dL/ds per block, accumulated; nil when the gates are not learned (plain LoRA, inference).
    public let scoreGrads: FloatBuffer?
    /// groupBlocks[layer][group]: the block indices of the group's blocks that can run in this run (ascending).
    /// A group's saved h and g are [rows, k·r] with block groupBlocks[l][g][j] in columns j·r ..< (j+1)·r.
    let groupBlocks: [[[Int]]]
    /// groupAll[layer][group]: every block of the group, held here or not (consecutive indices): W' has them all.
    let groupAll: [[Range<Int>]]
    /// hOffset[layer][group]: where the group's saved h starts, in blocks of rows·r floats.
    let hOffset: [[Int]]
    /// slot[i]: block i's position among the blocks of this run (its A and B in ``grads``); nil: it never runs.
    let slot: [Int?]

    /// `blocks`: the blocks that can run (nil: every block); see the type's documentation.
    public init(adapters: LoRAAdapters, activations acts: ViTActivations, gradients: Bool, scoreGradients: Bool,
                blocks: [Bool]? = nil) throws {
        self.adapters = adapters
        rows = acts.rows
        training = acts.training
        let r = adapters.config.rank, model = adapters.model
        let holds = blocks ?? [Bool](repeating: true, count: adapters.blocks.count)
        precondition(holds.count == adapters.blocks.count, "LoRARun: \(holds.count) flags for \(adapters.blocks.count) blocks")
        var slot = [Int?](repeating: nil, count: adapters.blocks.count), n = 0
        for i in holds.indices where holds[i] { slot[i] = n; n += 1 }
        self.slot = slot
        saved = try FloatBuffer(count: (acts.training ? max(n, 1) : 1) * rows * r)
        groupAll = (0..<model.numLayers).map { l in
            LoRAGroup.allCases.map { g in
                let idx = g.targets.compactMap { adapters.block(layer: l, target: $0)?.index }
                precondition(idx.isEmpty || idx.last! - idx.first! + 1 == idx.count, "LoRA blocks of a group in order")
                return (idx.first ?? 0)..<((idx.last ?? -1) + 1)
            }
        }
        groupBlocks = groupAll.map { $0.map { $0.filter { holds[$0] } } }
        // The group's h starts at the slot of its first block: the blocks of a layer's groups are in slot order.
        hOffset = groupBlocks.map { $0.map { $0.first.flatMap { slot[$0] } ?? 0 } }
        let maxIn = max(model.hiddenSize, model.mlpSize)
        var sizes = LoRAGroup.allCases.map { g -> Int in
            let f = g.features(model)
            return g.targets.contains { adapters.config.targets.contains($0) } ? f.in * f.out : 0
        }
        sizes += [rows * 3 * r, 3 * r * maxIn, 3 * r * maxIn, r * maxIn,
                  Kernels.thinOuterScratchCount(r: 3 * r, cols: maxIn)]
        scratch = try FloatBuffer(count: sizes.reduce(0, +))
        var p = scratch.base, regions: [UnsafeMutablePointer<Float>] = []
        for s in sizes { regions.append(p); p += s }
        merged = Array(regions[0..<LoRAGroup.allCases.count])
        gStack = regions[4]; aStack = regions[5]; dAStack = regions[6]; bT = regions[7]; partials = regions[8]
        grads = gradients ? try TensorStore(layout: LoRAAdapters.layout(adapters.blocks.filter { holds[$0.index] }, rank: r)) : nil
        scoreGrads = gradients && scoreGradients ? try FloatBuffer(count: adapters.blocks.count) : nil
    }

    public func zeroGradients() {
        grads?.zero()
        scoreGrads?.zero()
    }

    /// Whether block i can run in this run (it has state here).
    public func holds(_ i: Int) -> Bool { slot[i] != nil }

    /// The gradients of block i's A [r, in] and B [out, r] in ``grads``; nil when it has none here.
    public func gradients(_ i: Int) -> (a: UnsafeMutableBufferPointer<Float>, b: UnsafeMutableBufferPointer<Float>)? {
        guard let grads, let s = slot[i] else { return nil }
        return (grads.buffer(2 * s), grads.buffer(2 * s + 1))
    }

    /// The group's saved h [rows, k·r] (block groupBlocks[l][g][j] in columns j·r ..< (j+1)·r).
    func h(layer: Int, group: LoRAGroup) -> UnsafeMutablePointer<Float> {
        saved.base + (training ? hOffset[layer][group.rawValue] : 0) * rows * adapters.config.rank
    }

    /// Whether the score gradients are computed in this pass: the run has them and the gates still learn (once
    /// they settle, an inactive block costs nothing).
    var learnsScores: Bool { scoreGrads != nil && !adapters.gates.settled }

    /// Whether a held block (one of ``groupBlocks``) must run: it acts, or its score needs h and g for the
    /// straight-through gradient.
    func runs(_ i: Int) -> Bool { adapters.gates.mask[i] || learnsScores }

    /// The first group of `layer` in forward order (q/k/v, output, fc1, fc2) with a held block that runs: the
    /// lowest point of the layer a truncated backward must reach (nil: no adapter of the layer needs a gradient).
    func lowestGroup(layer: Int) -> LoRAGroup? {
        LoRAGroup.allCases.first { groupBlocks[layer][$0.rawValue].contains(where: runs) }
    }

    /// ``lowestGroup(layer:)`` as a target (q/k/v: `.query`), for FLOP counts.
    public func lowestTarget(layer: Int) -> LoRATarget? { lowestGroup(layer: layer)?.targets.first }

    /// Whether the backward will want h (LoRA or score gradients on training activations).
    var savesH: Bool { training && (grads != nil || scoreGrads != nil) }

    /// Rows of a block's target in the group's (packed) weight: q at 0, k at D, v at 2D.
    func rowOffset(_ b: LoRAAdapters.Block) -> Int {
        b.target == .key ? b.outFeatures : b.target == .value ? 2 * b.outFeatures : 0
    }

    /// The weight the group's Linear must use in the forward and the backward: W' = W + Σ_active c · B A
    /// (each active block's product added to its target's rows of the packed weight), built into scratch from
    /// `base` (the group's W [out, in]); `base` itself when no block of the group is active (bit for bit the base
    /// model). The backward rebuilds the same W' (the parameters do not change in between).
    func weight(layer: Int, group: LoRAGroup, base: UnsafePointer<Float>) -> UnsafePointer<Float> {
        let blocks = groupAll[layer][group.rawValue], mask = adapters.gates.mask
        guard blocks.contains(where: { mask[$0] }) else { return base }
        let f = group.features(adapters.model), w = merged[group.rawValue], r = adapters.config.rank
        Parallel.forChunks(f.out, work: f.out * f.in) { _, rs in
            (w + rs.lowerBound * f.in).update(from: base + rs.lowerBound * f.in, count: rs.count * f.in)
        }
        for i in blocks where mask[i] {
            let b = adapters.blocks[i]
            sgemm(m: b.outFeatures, n: b.inFeatures, k: r, alpha: adapters.config.scale, a: adapters.b(b), lda: r,
                  b: adapters.a(b), ldb: b.inFeatures, beta: 1, c: w + rowOffset(b) * b.inFeatures, ldc: b.inFeatures)
        }
        return UnsafePointer(w)
    }

    /// Saves h = x [A_1; …; A_k]ᵀ [rows, k·r] for the group's blocks (x [rows, in]) when the backward will need
    /// it and one of them runs. The output itself came from the Linear on ``weight(layer:group:base:)``.
    func forward(layer: Int, group: LoRAGroup, x: UnsafePointer<Float>) {
        let blocks = groupBlocks[layer][group.rawValue]
        guard savesH, blocks.contains(where: runs) else { return }
        let r = adapters.config.rank, k = blocks.count, inF = adapters.blocks[blocks[0]].inFeatures
        var a = UnsafePointer(adapters.a(adapters.blocks[blocks[0]]))
        if k > 1 {
            for (j, i) in blocks.enumerated() {
                (aStack + j * r * inF).update(from: adapters.a(adapters.blocks[i]), count: r * inF)
            }
            a = UnsafePointer(aStack)
        }
        Kernels.thinRows(h(layer: layer, group: group), ldo: k * r, x, ldx: inF, a, ldw: inF, rows: rows, k: inF, r: k * r)
    }

    /// Backward of ``forward(layer:group:x:)`` and of the LoRA part of ``weight(layer:group:base:)``: dy [rows,
    /// out of the packed weight] (row stride ldy; a block's columns start at its row offset in the weight), x the
    /// forward's input [rows, in]. dx is the caller's (dy W' already holds c · g A).
    func backward(layer: Int, group: LoRAGroup, dy: UnsafePointer<Float>, ldy: Int, x: UnsafePointer<Float>) {
        let blocks = groupBlocks[layer][group.rawValue], mask = adapters.gates.mask
        guard blocks.contains(where: runs) else { return }
        let r = adapters.config.rank, c = adapters.config.scale, k = blocks.count, ldh = k * r
        let h = h(layer: layer, group: group), g = gStack
        for (j, i) in blocks.enumerated() where runs(i) {
            let b = adapters.blocks[i], outF = b.outFeatures, dyb = dy + rowOffset(b), hj = h + j * r, gj = g + j * r
            // g = dy B: sgemm reads B [out, r] as it is; the thin kernel (small r · out) wants Bᵀ [r, out].
            let bp = adapters.b(b)
            if r * outF > Kernels.thinRowsLimit {
                sgemm(m: rows, n: r, k: outF, a: dyb, lda: ldy, b: bp, ldb: r, beta: 0, c: gj, ldc: ldh)
            } else {
                for o in 0..<outF {
                    for q in 0..<r { bT[q * outF + o] = bp[o * r + q] }
                }
                Kernels.thinRows(gj, ldo: ldh, dyb, ldx: ldy, bT, ldw: outF, rows: rows, k: outF, r: r)
            }
            if let sg = scoreGrads, learnsScores {
                // Σ g ⊙ h: each row's r products in Float (vector lanes), the rows added in Double.
                var s: Double = 0
                for row in 0..<rows { s += Double(sdot(r, gj + row * ldh, hj + row * ldh)) }
                sg[i] += c * Float(s)
            }
            if mask[i], let dB = gradients(i)?.b.baseAddress {
                Kernels.thinOuter(dB, lda: r, transposed: true, hj, lds: ldh, dyb, ldx: ldy,
                                  rows: rows, r: r, cols: outF, alpha: c, partials: partials)
            }
        }
        guard grads != nil, let j0 = blocks.firstIndex(where: { mask[$0] }),
              let j1 = blocks.lastIndex(where: { mask[$0] }) else { return }
        let inF = adapters.blocks[blocks[j0]].inFeatures
        if j0 == j1 {
            Kernels.thinOuter(gradients(blocks[j0])!.a.baseAddress!, lda: inF, g + j0 * r, lds: ldh, x,
                              ldx: inF, rows: rows, r: r, cols: inF, alpha: c, partials: partials)
            return
        }
        // dA of the group's blocks j0…j1 in one pass over x (rows of blocks in between that are inactive are dropped).
        let span = (j1 - j0 + 1) * r
        dAStack.update(repeating: 0, count: span * inF)
        Kernels.thinOuter(dAStack, lda: inF, g + j0 * r, lds: ldh, x, ldx: inF, rows: rows, r: span, cols: inF,
                          alpha: c, partials: partials)
        for j in j0...j1 where mask[blocks[j]] {
            let dA = gradients(blocks[j])!.a.baseAddress!, src = dAStack + (j - j0) * r * inF
            for e in 0..<(r * inF) { dA[e] += src[e] }
        }
    }
}
