import Datasets
import VisionTransformer

extension ImageTransform {
    /// OpenAI CLIP's per-channel pixel statistics (every CLIP and OpenCLIP checkpoint is trained with them).
    public static let clipMean: [Float] = [0.48145466, 0.4578275, 0.40821073]
    public static let clipStd: [Float] = [0.26862954, 0.26130258, 0.27577711]

    /// The input transform a model was trained with: CLIP's statistics for a CLIP image tower (one with a
    /// projection), ImageNet's for DINOv2.
    public init(model: ViTConfig, size: Int) {
        let clip = model.projectionDim != nil
        self.init(height: size, width: size, mean: clip ? Self.clipMean : Self.imageNetMean,
                  std: clip ? Self.clipStd : Self.imageNetStd)
    }
}
