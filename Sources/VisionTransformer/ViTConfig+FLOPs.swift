/// Floating-point operation counts of the dense math (GEMMs: 2·m·n·k), per image. Element-wise passes are not
/// counted: the ratio to the sgemm peak then says how close a step gets to pure GEMM speed.
extension ViTConfig {
    /// Forward: patch projection, per block q/k/v/out (4·D²) and fc1/fc2 (2·D·M) per token, and the attention
    /// products q·kᵀ and P·v (2·T²·D each).
    public func forwardFLOPs(tokens t: Int) -> Double {
        let d = Double(hiddenSize), m = Double(mlpSize), tt = Double(t)
        let patch = 2 * Double(t - 1) * Double(patchDim) * d
        let block = 2 * tt * (4 * d * d + 2 * d * m) + 2 * 2 * tt * tt * d
        return patch + Double(numLayers) * block
    }

    /// Backward through every block to the embeddings' output (input gradients): the linear layers' dx GEMMs
    /// (as many FLOPs as their forward) and four attention products (dP, dv, dq, dk). Weight gradients add
    /// ``weightGradientFLOPs(tokens:)``.
    public func inputGradientFLOPs(tokens t: Int) -> Double {
        Double(numLayers) * blockInputGradientFLOPs(tokens: t)
    }

    /// One block's share of ``inputGradientFLOPs(tokens:)``, in backward order fc2, fc1, output, attention, q/k/v.
    /// `stoppingAfter`: the backward ends right after that target's LoRA backward (a truncated backward's lowest
    /// block), so its own dx GEMM and everything below it are not computed; nil: the whole block.
    public func blockInputGradientFLOPs(tokens t: Int, stoppingAfter stop: LoRATarget? = nil) -> Double {
        let d = Double(hiddenSize), m = Double(mlpSize), tt = Double(t)
        let fc2 = 2 * tt * m * d, fc1 = 2 * tt * d * m, output = 2 * tt * d * d
        let attention = 4 * 2 * tt * tt * d, qkv = 2 * tt * d * 3 * d
        switch stop {
        case .fc2?: return 0
        case .fc1?: return fc2
        case .output?: return fc2 + fc1
        case .query?, .key?, .value?: return fc2 + fc1 + output + attention
        case nil: return fc2 + fc1 + output + attention + qkv
        }
    }

    /// The base weights' gradient GEMMs (dW = dyᵀ·x) of every block and of the patch projection.
    public func weightGradientFLOPs(tokens t: Int) -> Double {
        let d = Double(hiddenSize), m = Double(mlpSize), tt = Double(t)
        return 2 * Double(t - 1) * Double(patchDim) * d + Double(numLayers) * 2 * tt * (4 * d * d + 2 * d * m)
    }
}
