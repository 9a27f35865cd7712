import Tensors
import VisionTransformer

/// The gradients of one batch for reference checks: loss = mean cross-entropy of the head on the backbone's feature,
/// every LoRA block treated as active, score gradients by the straight-through rule.
/// Keys: `loss` [1], `head.weight.grad`, `head.bias.grad`, `<PEFT key>.grad` for each A and B, and
/// `<module>.lora_gate.grad` [1] for each score (PEFT prefix `base_model.model.`).
public enum GradientDump {
    public struct Tensor { public let name: String; public let values: [Float]; public let shape: [Int] }

    public static func compute(model: ViTModel, adapters: LoRAAdapters, head: ClassifierHead, pixels: [Float],
                               labels: [Int32], height: Int, width: Int) throws -> [Tensor] {
        let n = labels.count
        guard n > 0, pixels.count == n * model.config.channels * height * width else {
            throw ViTError.badInput("batch: \(pixels.count) pixel values for \(n) labels of \(model.config.channels)×\(height)×\(width)")
        }
        guard labels.allSatisfy({ $0 >= 0 && Int($0) < head.classes }) else {
            throw ViTError.badInput("batch: labels must be in 0..<\(head.classes) (the head's classes)")
        }
        let acts = try ViTActivations(config: model.config, batch: n, height: height, width: width)
        adapters.gates.setAll(true)
        let run = try LoRARun(adapters: adapters, activations: acts, gradients: true, scoreGradients: true)
        let headGrads = try head.makeStore()
        let logits = try FloatBuffer(count: n * head.classes), dLogits = try FloatBuffer(count: n * head.classes)
        let dOut = try FloatBuffer(count: acts.rows * model.config.hiddenSize)
        let dFeatures = try FloatBuffer(count: n * model.config.featureDim)
        let (lossSum, _) = forwardLoss(model: model, acts: acts, lora: run, head: head, headGrads: headGrads,
                                       logits: logits, dLogits: dLogits, dFeatures: dFeatures, pixels: pixels, labels: labels)
        backwardLoss(model: model, acts: acts, lora: run, baseGrads: nil, dFeatures: dFeatures, dOut: dOut)
        var out = [Tensor(name: "loss", values: [Float(lossSum / Double(n))], shape: [1]),
                   Tensor(name: "head.weight.grad", values: Array(headGrads.buffer("head.weight")), shape: [head.classes, head.hidden]),
                   Tensor(name: "head.bias.grad", values: Array(headGrads.buffer("head.bias")), shape: [head.classes])]
        let g = run.grads!, sg = run.scoreGrads!
        for b in adapters.blocks {
            out.append(Tensor(name: LoRAAdapters.peftKey(b, "A") + ".grad", values: Array(g.buffer(b.aName)),
                              shape: [adapters.config.rank, b.inFeatures]))
            out.append(Tensor(name: LoRAAdapters.peftKey(b, "B") + ".grad", values: Array(g.buffer(b.bName)),
                              shape: [b.outFeatures, adapters.config.rank]))
            out.append(Tensor(name: LoRAAdapters.gateKey(b) + ".grad", values: [sg[b.index]], shape: [1]))
        }
        return out
    }
}
