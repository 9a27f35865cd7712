import ArgumentParser
import Datasets
import Foundation
import Tensors
import Training
import VisionTransformer

struct Probe: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Linear probe: fit a classifier on frozen backbone features (CLS token + mean patch token) and report test accuracy, next to the same probe on raw pixels.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var data: DataOptions
    @OptionGroup var runtime: RuntimeOptions

    @Option(help: "Images per forward pass.")
    var batchSize = 32

    @Option(help: "Full-batch AdamW steps of the probe.")
    var probeSteps = 300

    @Option(help: "Decoupled weight decay of the probe's AdamW (its only regularization). Default: chosen from 1e-4 … 10 on the last 20 % of the training images.")
    var probeWeightDecay: Float?

    @Option(help: "Write the results as JSON to this file.")
    var json: String?

    func validate() throws {
        guard batchSize > 0 else { throw ValidationError("--batch-size must be positive, got \(batchSize)") }
        guard probeSteps > 0 else { throw ValidationError("--probe-steps must be positive, got \(probeSteps)") }
        if let wd = probeWeightDecay, !(wd >= 0 && wd.isFinite) {
            throw ValidationError("--probe-weight-decay must be a finite number ≥ 0, got \(wd)")
        }
    }

    func run() throws {
        let log = runtime.start("selora.probe")
        if let json { try checkOutput(json, notOneOf: [model.weights], flag: "--json") }
        let vit = try model.loadModel(log: log)
        try data.check(model: vit.config)
        let (train, test) = try data.load()
        log.info("data: \(train.count) training and \(test.count) test images, \(train.height)×\(train.width) → \(data.imageSize)×\(data.imageSize)")
        let extractor = try Evaluator(model: vit, adapters: nil, size: data.imageSize, batch: batchSize)
        let featureCount = 2 * vit.config.hiddenSize
        let t0 = Date()
        let trainX = try extractor.probeFeatures(train), testX = try extractor.probeFeatures(test)
        let seconds = Date().timeIntervalSince(t0)
        let imagesPerSecond = Double(train.count + test.count) / seconds
        log.info("features: \(train.count + test.count) images in \(String(format: "%.1f", seconds)) s (\(String(format: "%.1f", imagesPerSecond)) images/s)")

        var options = LinearProbe.Options()
        options.steps = probeSteps
        func fit(_ x: [Float], _ features: Int, _ what: String) -> LinearProbe {
            if let wd = probeWeightDecay {
                options.weightDecay = wd
                return LinearProbe.fit(x: x, labels: train.labels, features: features, classes: train.numClasses,
                                       options: options).0
            }
            let r = LinearProbe.fitSelectingWeightDecay(x: x, labels: train.labels, features: features,
                                                        classes: train.numClasses, options: options)
            let table = r.validation.map { String(format: "%g: %.1f%%", $0.0, 100 * $0.1) }.joined(separator: ", ")
            log.info("\(what) probe: validation accuracy by weight decay \(table) → \(r.weightDecay)")
            return r.probe
        }
        let probe = fit(trainX, featureCount, "feature")
        let accuracy = probe.accuracy(testX, labels: test.labels)
        let pixelProbe = fit(train.normalizedPixels(), train.pixelsPerImage, "pixel")
        let pixelAccuracy = pixelProbe.accuracy(test.normalizedPixels(), labels: test.labels)

        print("")
        let rows = [(String(format: "DINOv2 ViT-S/14 features (%d px)", data.imageSize), accuracy),
                    (String(format: "raw pixels (%d×%d)", train.height, train.width), pixelAccuracy)]
        let width = max(8, rows.map { $0.0.count }.max() ?? 0)
        func pad(_ s: String) -> String { s + String(repeating: " ", count: width - s.count) }
        print("| \(pad("probe on")) | test accuracy |")
        print("|-\(String(repeating: "-", count: width))-|---------------|")
        for (name, acc) in rows { print("| \(pad(name)) | \(String(format: "%12.1f%%", 100 * acc)) |") }
        print(String(format: "\n%d train / %d test images (first of each file); feature extraction %.1f images/s",
                     train.count, test.count, imagesPerSecond))
        if let json {
            let record: [String: Any] = [
                "train_count": train.count, "test_count": test.count, "image_size": data.imageSize,
                "feature_accuracy": accuracy, "pixel_accuracy": pixelAccuracy,
                "images_per_second": imagesPerSecond, "weights": model.weights,
            ]
            let bytes = try JSONSerialization.data(withJSONObject: record, options: [.prettyPrinted, .sortedKeys])
            try bytes.write(to: URL(fileURLWithPath: json), options: .atomic)
        }
    }
}
