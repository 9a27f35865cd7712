// libFuzzer target: the training-checkpoint loader, Checkpoint.resumeNewest(_:runDirectory:) (list the run's
// checkpoints/, open the newest with SafeTensorsFile(path:), Checkpoint.restore: metadata, sizes, NaN checks,
// optimizer step counts, gates) for a tiny model (width 8, 2 blocks, MLP 12) and one trainer per method.
// Input: [method index (mod 4, Method.allCases order)][checkpoints/step-00000001.safetensors bytes]
//
// Seeds are written by this binary itself (a checkpoint of each method at step 0, in the current format, so
// they follow Checkpoint.swift as it changes): SELORA_FUZZ_WRITE_SEEDS=<dir> fuzz-checkpoint writes them and exits.
import Foundation
import SafeTensors
import Tensors
import Training
import VisionTransformer

let vit = ViTConfig(hiddenSize: 8, numLayers: 2, numHeads: 2, mlpSize: 12, patchSize: 2, channels: 3, positionGrid: 3)

func makeTrainer(_ method: Method) -> Trainer {
    let model = try! ViTModel(config: vit)
    var rng = SeededRandom(seed: 1)
    for i in 0..<model.params.store.storage.count { model.params.store.storage[i] = 0.3 * rng.normal() }
    var c = TrainingConfig()
    c.method = method; c.lora.rank = 2; c.steps = 10; c.batchSize = 4; c.warmupSteps = 1; c.penaltyStartStep = 3
    return try! Trainer(model: model, classes: 3, config: c, batch: 4, height: 8, width: 8)
}

let trainers = Method.allCases.map(makeTrainer)

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>) -> Int32 {
    guard let out = ProcessInfo.processInfo.environment["SELORA_FUZZ_WRITE_SEEDS"] else { return 0 }
    do {
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        for (i, method) in Method.allCases.enumerated() {
            let run = FuzzScratch.directory + "/seed-\(i)"
            let path = try Checkpoint.save(trainers[i], runDirectory: run, baseWeights: "fuzz.safetensors")
            let bytes = [UInt8(i)] + [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            try Data(bytes).write(to: URL(fileURLWithPath: "\(out)/\(method.rawValue)-step0"))
            try FileManager.default.removeItem(atPath: run)
        }
    } catch {
        fatalError("cannot write the checkpoint seeds: \(error)")
    }
    exit(0)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    let trainer = trainers[Int(input.byte()) % trainers.count]
    let checkpoints = FuzzScratch.directory + "/" + Checkpoint.directoryName
    try? FileManager.default.createDirectory(atPath: checkpoints, withIntermediateDirectories: true)
    _ = FuzzScratch.write(input.rest(), Checkpoint.directoryName + "/" + Checkpoint.fileName(step: 1))
    fuzzExpecting([CheckpointError.self, SafeTensorsError.self], "Checkpoint.resumeNewest") {
        _ = try Checkpoint.resumeNewest(trainer, runDirectory: FuzzScratch.directory)
        precondition((0...trainer.config.steps).contains(trainer.step))
        if let a = trainer.adapters {
            precondition(a.params.storage.buffer.allSatisfy { $0.isFinite } && a.gates.scores.buffer.allSatisfy { $0.isFinite })
        }
        precondition(trainer.head.params.storage.buffer.allSatisfy { $0.isFinite })
        fuzzNote("restored \(trainer.config.method.rawValue) at step \(trainer.step)")
    }
    return 0
}
