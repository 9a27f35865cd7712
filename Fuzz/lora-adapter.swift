// libFuzzer target: LoRAAdapters.load(directory:model:) on a directory holding adapter_config.json and
// adapter_model.safetensors, for a tiny model (width 8, 2 blocks, MLP 12).
// Input: [u16 config length][adapter_config.json bytes][adapter_model.safetensors bytes]
import Foundation
import SafeTensors
import Tensors
import VisionTransformer

let model = ViTConfig(hiddenSize: 8, numLayers: 2, numHeads: 2, mlpSize: 12, patchSize: 2, channels: 3, positionGrid: 3)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    _ = FuzzScratch.write(input.chunk(), LoRAAdapters.configFile)
    _ = FuzzScratch.write(input.rest(), LoRAAdapters.weightsFile)
    fuzzExpecting([CheckpointError.self, SafeTensorsError.self, ViTError.self], "LoRAAdapters.load") {
        let (adapters, _) = try LoRAAdapters.load(directory: FuzzScratch.directory, model: model)
        try! adapters.config.validate()
        precondition(adapters.model == model && adapters.blocks.count == model.numLayers * adapters.config.targets.count)
        precondition(adapters.params.storage.buffer.allSatisfy { $0.isFinite })
        fuzzNote("loaded \(adapters.blocks.count) blocks, \(adapters.activeCount) active, rank \(adapters.config.rank)")
    }
    return 0
}
