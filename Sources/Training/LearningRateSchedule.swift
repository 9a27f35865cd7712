import Foundation

/// Linear warm-up to the peak, then cosine decay to `minFactor` × peak at the last step (the schedule of
/// `transformers.get_cosine_schedule_with_warmup` when minFactor = 0). Returns the multiplier of the peak.
public struct LearningRateSchedule: Codable, Equatable, Sendable {
    public var totalSteps: Int
    public var warmupSteps: Int
    public var minFactor: Float = 0

    public init(totalSteps: Int, warmupSteps: Int, minFactor: Float = 0) {
        self.totalSteps = totalSteps; self.warmupSteps = warmupSteps; self.minFactor = minFactor
    }

    /// Multiplier at `step` (0-based: the first update is step 0).
    public func factor(_ step: Int) -> Float {
        if step < warmupSteps { return Float(step + 1) / Float(warmupSteps) }
        let span = max(1, totalSteps - warmupSteps)
        let progress = min(1, Double(step - warmupSteps) / Double(span))
        return minFactor + (1 - minFactor) * Float(0.5 * (1 + cos(Double.pi * progress)))
    }
}
