import ArgumentParser
import Tensors
import VisionTransformer

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the compute back-ends in use (OpenBLAS kernel and threads, SIMD level) and, with --weights, the model.")

    @Option(help: "Optional checkpoint to describe.")
    var weights: String?

    @OptionGroup var runtime: RuntimeOptions

    func run() throws {
        let log = runtime.start("selora.info")
        print("OpenBLAS core:      \(BLASInfo.coreName)")
        print("OpenBLAS threads:   \(BLASInfo.numThreads)")
        print("element-wise ISA:   \(Kernels.isa)")
        if let weights {
            let model = try ModelOptions.loadModel(weights: weights, log: log)
            print("model:              \(model.config)")
            print("parameters:         \(model.params.store.layout.parameterCount)")
        }
    }
}

extension ModelOptions {
    init(weights: String, heads: Int?) {
        self.init()
        self.weights = weights
        self.heads = heads
    }
}
