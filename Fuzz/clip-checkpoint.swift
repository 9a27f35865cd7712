// libFuzzer target: CLIPModel.load(path:options:) on one safetensors file (OpenCLIP or Hugging Face names) and, when
// it loads, the image tower's forward and features on one image at its native size and the text tower on one row of
// token ids; loaded weights must be finite. Options byte: bit 0 = activation GELU (else QuickGELU); bit 1 = also ViTModel.load (image tower only).
// Input: [u8 options][safetensors bytes]
import Foundation
import SafeTensors
import Tensors
import VisionTransformer

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    let options = input.byte()
    let path = FuzzScratch.write(input.rest(), "clip.safetensors")
    let act: Activation = options & 1 == 1 ? .gelu : .quickGELU
    fuzzExpecting([CheckpointError.self, SafeTensorsError.self, ViTError.self], "CLIPModel.load") {
        if options & 2 == 2 {
            let tower = try ViTModel.load(path: path, activation: act)
            precondition(tower.config.projectionDim != nil || !CLIPModel.isCLIP(path: path))
        }
        let clip = try CLIPModel.load(path: path, options: CLIPLoadOptions(activation: act))
        precondition(clip.vision.params.store.storage.buffer.allSatisfy(\.isFinite) && clip.logitScale.isFinite
                     && clip.text.params.storage.buffer.allSatisfy(\.isFinite)
                     && clip.text.stack.params.store.storage.buffer.allSatisfy(\.isFinite))
        let v = clip.vision.config, side = v.positionGrid * v.patchSize
        // Keep a replay cheap: only small towers run forward.
        if v.hiddenSize <= 64 && side <= 64 && v.numLayers <= 4 {
            let acts = try ViTActivations(config: v, batch: 1, height: side, width: side, training: false)
            let pixels = [Float](repeating: 0.5, count: v.channels * side * side)
            clip.vision.forward(pixels, acts)
            _ = clip.vision.features(acts)   // finite weights can still overflow: only memory safety is checked here
        }
        let t = clip.text.config
        if t.width <= 64 && t.contextLength <= 128 && t.stack.numLayers <= 4 {
            let ids = (0..<t.contextLength).map { Int32($0 % t.vocabularySize) }
            let out = try clip.text.encode(ids: ids)
            precondition(out.count == t.projectionDim)
        }
        fuzzNote("loaded \(v); \(t)")
    }
    return 0
}
