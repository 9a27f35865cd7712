import Tensors

/// When the sparsity penalty applies and how hard: λ·mean|s| on the scores from `startStep` on, and optionally a
/// budget (at most `maxActivePercent` % of the blocks, the top scores) from the same step.
///
/// The penalty waits for a warm-up because LoRA's B starts at 0, where every score gradient is exactly zero: the
/// adapters must move first (TAPS waits 2 epochs).
public struct GateSchedule: Equatable, Sendable {
    /// λ of the penalty λ·mean|s|.
    public var penalty: Float
    /// First step (0-based) at which the penalty and the budget apply.
    public var startStep: Int
    /// Budget: at most ⌊P/100 · blocks⌋ blocks stay active once the penalty has started. nil: τ alone decides.
    public var maxActivePercent: Float?
    /// Settle at this step whatever the gates do (nil: only the automatic rule).
    public var settleAfter: Int?
    /// Settle automatically once no gate has flipped for this many consecutive steps after the penalty started
    /// (0: never automatically).
    public var settlePatience: Int

    public init(penalty: Float, startStep: Int, maxActivePercent: Float? = nil, settleAfter: Int? = nil,
                settlePatience: Int = 0) {
        self.penalty = penalty; self.startStep = startStep; self.maxActivePercent = maxActivePercent
        self.settleAfter = settleAfter; self.settlePatience = settlePatience
    }
}

/// The gate of every LoRA block — the whole gate rule of selective LoRA in one place:
///
///     forward:  block b acts in a step  ⇔  mask[b],   mask[b] = 1[s_b ≥ τ]  (then capped by the budget)
///     backward: dL/ds_b = dL/dI_b  (straight-through; computed by ``LoRARun``'s backward, active or not)
///     penalty:  L += λ · Σ|s| / n  from ``GateSchedule/startStep`` on (``addPenaltyGradient(_:step:)``)
///     budget:   from the same step, only the ⌊P/100 · n⌋ highest scores stay on (ties to the lower block index)
///     settling: at ``GateSchedule/settleAfter``, or once no gate flipped for ``GateSchedule/settlePatience``
///               consecutive steps after the penalty started, the mask and the scores freeze for the rest of the
///               run: inactive blocks then cost nothing (no straight-through work, no score gradients, nothing
///               reduced) and the backward can stop at the lowest active block (``settledStep``)
///
/// This type is the only writer of the mask. Each phase has one entry point: ``update(step:)`` before a training
/// step (``Rule/learned(_:)``: the rule above; ``Rule/alwaysOn``: plain LoRA), ``set(_:)`` for a mask that comes
/// from outside the rule (an adapter file, a checkpoint, a benchmark's pattern), and ``setAll(_:)``.
/// Everything else reads ``mask``.
public final class Gates {
    public enum Rule: Equatable, Sendable {
        /// Plain LoRA: every block always acts; the scores are ignored.
        case alwaysOn
        /// Selective LoRA: scores learn which blocks act.
        case learned(GateSchedule)
        /// The mask is whatever ``set(_:)`` wrote; ``update(step:)`` leaves it (a given pattern). The scores still
        /// learn in a run that computes their gradients (a selective run held by hand); `lora-last-k` computes none.
        case fixed
    }

    /// Gate scores s, one per block.
    public let scores: FloatBuffer
    /// Whether each block acts in the current step.
    public private(set) var mask: [Bool]
    /// τ: a block acts while s ≥ τ.
    public let threshold: Float
    /// How ``update(step:)`` sets the mask. Defaults to ``Rule/alwaysOn``; a selective run sets ``Rule/learned(_:)``.
    public var rule: Rule = .alwaysOn
    /// The step at which the gates settled (mask and scores frozen from then on); nil while they still learn.
    public private(set) var settledStep: Int?
    /// Consecutive updates, after the penalty started, that left the mask as it was (the automatic settle rule).
    public private(set) var stableSteps = 0
    /// The mask before the last update (to count flips; reused, no allocation).
    var previous: [Bool]

    /// Every score at `initialScore`, every block active.
    public init(count: Int, threshold: Float, initialScore: Float) throws {
        scores = try FloatBuffer(count: count)
        for i in 0..<count { scores[i] = initialScore }
        mask = [Bool](repeating: true, count: count)
        previous = mask
        self.threshold = threshold
    }

    /// Whether the gates have settled: mask and scores are frozen.
    public var settled: Bool { settledStep != nil }

    public var count: Int { mask.count }

    /// Blocks active in the current step.
    public var activeCount: Int {
        var n = 0
        for on in mask where on { n += 1 }
        return n
    }

    /// The mask as text, "1" active / "0" inactive, in block order (metrics logs and checkpoints).
    public var maskText: String { String(mask.map { $0 ? "1" : "0" }) }

    /// Whether the penalty and the budget apply at `step`.
    public func penaltyActive(step: Int) -> Bool {
        if case .learned(let s) = rule { return step >= s.startStep }
        return false
    }

    // MARK: Writing the mask

    /// Sets the mask for training step `step` from the rule, and settles when the schedule says so
    /// (allocation-free). Once settled, the mask no longer changes.
    public func update(step: Int) {
        switch rule {
        case .alwaysOn: setAll(true); return
        case .fixed: return
        case .learned(let schedule):
            guard settledStep == nil else { return }
            for i in 0..<count { previous[i] = mask[i] }
            for i in 0..<count { mask[i] = scores[i] >= threshold }
            if let p = schedule.maxActivePercent, step >= schedule.startStep {
                // Block i keeps its gate iff fewer than k blocks rank above it (higher score, or equal and lower index).
                let k = Int((Double(p) / 100 * Double(count)).rounded(.down))
                for i in 0..<count where mask[i] {
                    var above = 0
                    for j in 0..<count where scores[j] > scores[i] || (scores[j] == scores[i] && j < i) { above += 1 }
                    if above >= k { mask[i] = false }
                }
            }
            if step > schedule.startStep {
                stableSteps = previous == mask ? stableSteps + 1 : 0
            }
            if let at = schedule.settleAfter, step >= at { settledStep = step }
            if schedule.settlePatience > 0, stableSteps >= schedule.settlePatience { settledStep = step }
        }
    }

    /// Restores the settle state a checkpoint recorded (with ``set(_:)`` for the mask).
    public func restoreSettling(settledStep: Int?, stableSteps: Int) {
        self.settledStep = settledStep
        self.stableSteps = max(0, stableSteps)
    }

    /// A mask from outside the rule: an adapter file's stored blocks, a checkpoint, a benchmark's pattern.
    /// Precondition: one entry per block (callers check files against the block count first).
    public func set(_ newMask: [Bool]) {
        precondition(newMask.count == count, "Gates.set: \(newMask.count) gates for \(count) blocks")
        for i in 0..<count { mask[i] = newMask[i] }
    }

    /// Every gate on (or off).
    public func setAll(_ on: Bool) {
        for i in 0..<count { mask[i] = on }
    }

    // MARK: The penalty

    /// Adds the penalty's gradient d/ds of λ·mean|s| = λ·sign(s)/n (sign(0) = 0) to `scoreGrads` when it applies
    /// at `step`.
    public func addPenaltyGradient(_ scoreGrads: UnsafeMutableBufferPointer<Float>, step: Int) {
        guard case .learned(let schedule) = rule, step >= schedule.startStep, settledStep == nil else { return }
        precondition(scoreGrads.count == count, "Gates.addPenaltyGradient: size mismatch")
        let k = schedule.penalty / Float(count)
        for i in 0..<count {
            let s = scores[i]
            scoreGrads[i] += s > 0 ? k : (s < 0 ? -k : 0)
        }
    }
}
