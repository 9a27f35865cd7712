import Datasets
import Foundation
import Tensors
import VisionTransformer

/// The single-process fine-tuning loop over an image set: seeded epoch order (``EpochSampler``), the input
/// transform, ``Trainer`` steps.
public enum FineTune {
    /// Trains `config.steps` steps of `config.batchSize` images of `data` at `size`×`size` and returns the trainer
    /// (its gates set from the final scores). `onStep` sees every step's statistics.
    public static func run(model: ViTModel, data: ImageDataset, size: Int, config: TrainingConfig,
                           adapters: LoRAAdapters? = nil,
                           onStep: (StepStats) -> Void = { _ in }) throws -> Trainer {
        let trainer = try Trainer(model: model, classes: data.numClasses, config: config, batch: config.batchSize,
                                  height: size, width: size, adapters: adapters)
        let sampler = try EpochSampler(count: data.count, batchSize: config.batchSize, seed: config.seed)
        let transform = ImageTransform(height: size, width: size)
        let pixels = try FloatBuffer(count: config.batchSize * transform.floatsPerImage)
        for step in 0..<config.steps {
            let batch = try sampler.batch(at: sampler.position(ofStep: step))
            transform.apply(data, indices: batch, into: pixels.base)
            onStep(trainer.trainStep(pixels: pixels.base, labels: batch.map { data.labels[$0] }))
        }
        trainer.updateGates()
        return trainer
    }
}
