import Foundation
import SafeTensors
import Tensors
import VisionTransformer

/// A training checkpoint: everything a run needs to continue bit for bit — every tensor of ``TrainableTensors``
/// (head, adapters of every block active or not, gate scores, the backbone in `full`) with its AdamW moments and
/// step count, the gate mask, the step (which fixes the position in the seeded data order and the learning-rate
/// schedule), the configuration and a fingerprint of the base weights it started from.
///
/// One safetensors file per checkpoint, `checkpoints/step-00000120.safetensors`, written by rank 0 atomically
/// (temporary file, fsync, rename, fsync of the directory): a failure while writing leaves the previous checkpoint
/// as it was. Three flat tensors in the table's order — `params`, `adam.m`, `adam.v`, each [Σ sizes] — and
/// metadata: `adam.steps` (one count per tensor), `active` (the gate mask, "0"/"1" per block), `config`, `model`,
/// `weights_fingerprint`, `step`. The table is a pure function of the configuration, so the order needs no names.
public enum Checkpoint {
    public static let format = "selora-checkpoint-2"
    public static let directoryName = "checkpoints"

    public static func fileName(step: Int) -> String { String(format: "step-%08d.safetensors", step) }

    /// Fingerprint of base weights (the backbone a run starts from).
    public static func weightsFingerprint(_ model: ViTModel) -> String {
        var f = Fingerprint()
        f.add(model.params.store.storage)
        return String(f.value, radix: 16)
    }

    /// Writes the trainer's state after `trainer.step` steps into `runDirectory/checkpoints/`, then removes all but
    /// the newest `keep` checkpoints. Refuses to write non-finite state. Returns the file's path.
    @discardableResult
    public static func save(_ trainer: Trainer, runDirectory: String, baseWeights: String, keep: Int = 2) throws -> String {
        var w = SafeTensorsWriter()
        var meta: [String: String] = ["format": format, "step": String(trainer.step), "base_weights": baseWeights]
        for (name, tensor) in trainer.stateTensors() {
            guard tensor.allSatisfy({ $0.isFinite }) else {
                throw CheckpointError(path: runDirectory, message: "state `\(name)` holds NaN or Inf at step \(trainer.step): "
                                      + "refusing to write a checkpoint (the previous one is kept)")
            }
            try w.add(name, floats: tensor, shape: [tensor.count])
        }
        for (k, v) in trainer.stateMetadata() { meta[k] = v }
        let dir = URL(fileURLWithPath: runDirectory).appendingPathComponent(directoryName)
        do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
            throw CheckpointError(path: dir.path, message: "cannot create the checkpoint directory: \(error.localizedDescription)")
        }
        let path = dir.appendingPathComponent(fileName(step: trainer.step)).path
        try w.write(to: path, metadata: meta)
        if keep > 0 {
            for old in list(runDirectory: runDirectory).dropFirst(keep) { try? FileManager.default.removeItem(atPath: old.path) }
        }
        return path
    }

    /// Checkpoint files of a run, newest first: (step, path).
    public static func list(runDirectory: String) -> [(step: Int, path: String)] {
        let dir = URL(fileURLWithPath: runDirectory).appendingPathComponent(directoryName)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.compactMap { n -> (Int, String)? in
            guard n.hasPrefix("step-"), n.hasSuffix(".safetensors"),
                  let s = Int(n.dropFirst(5).dropLast(12)) else { return nil }
            return (s, dir.appendingPathComponent(n).path)
        }.sorted { $0.0 > $1.0 }
    }

    /// Restores `trainer` from the newest checkpoint of `runDirectory` that loads; checkpoints that do not load
    /// (truncated, corrupt) are skipped with a note in `skipped`. A checkpoint of another configuration or base
    /// weights is an error, not skipped: resuming it would silently train something else.
    public static func resumeNewest(_ trainer: Trainer, runDirectory: String) throws -> (path: String, skipped: [String]) {
        let all = list(runDirectory: runDirectory)
        guard !all.isEmpty else {
            throw CheckpointError(path: runDirectory, message: "no checkpoints in \(directoryName)/ to resume from")
        }
        var skipped: [String] = []
        for c in all {
            let file: SafeTensorsFile
            do { file = try SafeTensorsFile(path: c.path) } catch {
                skipped.append("\(error)")
                continue
            }
            try restore(trainer, from: file)
            return (c.path, skipped)
        }
        throw CheckpointError(path: runDirectory, message: "no checkpoint loads:\n  " + skipped.joined(separator: "\n  "))
    }

    /// Restores `trainer` from one checkpoint file, checking format, configuration, base weights and every size.
    public static func restore(_ trainer: Trainer, from file: SafeTensorsFile) throws {
        func fail(_ m: String) -> CheckpointError { CheckpointError(path: file.path, message: m) }
        guard file.metadata["format"] == format else {
            throw fail("not a selora checkpoint (format `\(file.metadata["format"] ?? "none")`, expected `\(format)`)")
        }
        let expected = trainer.stateMetadata()
        for key in ["config", "model", "weights_fingerprint"] where file.metadata[key] != expected[key] {
            let what = ["config": "training configuration", "model": "model shape",
                        "weights_fingerprint": "base weights (fingerprint)"][key]!
            throw fail("checkpoint of another \(what): it has \(file.metadata[key] ?? "none"), this run has \(expected[key] ?? "none")")
        }
        guard let stepText = file.metadata["step"], let step = Int(stepText), step >= 0, step <= trainer.config.steps else {
            throw fail("`step` metadata missing or outside 0…\(trainer.config.steps)")
        }
        var tensors: [String: [Float]] = [:]
        for (name, current) in trainer.stateTensors() {
            let v = try file.floats(name, expectShape: [current.count])
            guard v.allSatisfy({ $0.isFinite }) else { throw fail("`\(name)` holds NaN or Inf") }
            tensors[name] = v
        }
        try trainer.restoreState(tensors: tensors, metadata: file.metadata, step: step, path: file.path)
    }
}

extension Trainer {
    /// The state as flat arrays in the order of the table as built at the start (``checkpointTensors``): `params`,
    /// `adam.m`, `adam.v`. A tensor that a settled run dropped from its table (an inactive block's A and B) keeps
    /// its parameters and gets zero moments: it never trains again.
    func stateTensors() -> [(String, [Float])] {
        var params: [Float] = [], m: [Float] = [], v: [Float] = []
        let total = checkpointTensors.reduce(0) { $0 + $1.param.count }
        params.reserveCapacity(total); m.reserveCapacity(total); v.reserveCapacity(total)
        for t in checkpointTensors {
            params += t.param
            if let s = trainable.state(t.name) {
                m += UnsafeBufferPointer(start: s.m, count: t.param.count)
                v += UnsafeBufferPointer(start: s.v, count: t.param.count)
            } else {
                m += repeatElement(0, count: t.param.count)
                v += repeatElement(0, count: t.param.count)
            }
        }
        return [("params", params), ("adam.m", m), ("adam.v", v)]
    }

    /// AdamW step counts in ``checkpointTensors`` order (0 for a tensor the table dropped).
    var checkpointSteps: [Int] { checkpointTensors.map { t in trainable.state(t.name).map { trainable.steps[$0.index] } ?? 0 } }

    func stateMetadata() -> [String: String] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        var meta: [String: String] = [
            "config": String(decoding: (try? encoder.encode(config)) ?? Data(), as: UTF8.self),
            "model": String(decoding: (try? encoder.encode(model.config)) ?? Data(), as: UTF8.self),
            "weights_fingerprint": initialWeightsFingerprint,
            "adam.steps": checkpointSteps.map(String.init).joined(separator: ","),
        ]
        if let g = gates {
            meta["active"] = g.maskText
            meta["gates.settled_step"] = g.settledStep.map(String.init) ?? "none"
            meta["gates.stable_steps"] = String(g.stableSteps)
        }
        return meta
    }

    func restoreState(tensors: [String: [Float]], metadata: [String: String], step: Int, path: String) throws {
        func fail(_ m: String) -> CheckpointError { CheckpointError(path: path, message: m) }
        let n = checkpointTensors.count
        let fields = (metadata["adam.steps"] ?? "").split(separator: ",", omittingEmptySubsequences: false)
        let steps = fields.compactMap { Int($0) }
        guard fields.count == n, steps.count == n, steps.allSatisfy({ $0 >= 0 && $0 <= step }) else {
            throw fail("`adam.steps` must list \(n) step counts in 0…\(step)")
        }
        var mask: [Bool]?
        var settling: (step: Int?, stable: Int) = (nil, 0)
        if let g = gates, config.method == .selective {
            guard let text = metadata["active"], text.count == g.count, text.allSatisfy({ $0 == "0" || $0 == "1" }) else {
                throw fail("`active` must be \(g.count) characters of 0 and 1")
            }
            mask = text.map { $0 == "1" }
            let settled = metadata["gates.settled_step"] ?? "none"
            guard let stable = Int(metadata["gates.stable_steps"] ?? ""), stable >= 0, stable <= step,
                  settled == "none" || (Int(settled).map { $0 >= 0 && $0 <= step } ?? false) else {
                throw fail("`gates.settled_step` must be a step in 0…\(step) or none, `gates.stable_steps` a count in 0…\(step)")
            }
            settling = (Int(settled), stable)
        }
        // Sizes were checked against the table by the caller; nothing is written before every check passed.
        guard let params = tensors["params"], let m = tensors["adam.m"], let v = tensors["adam.v"] else {
            throw fail("missing `params`, `adam.m` or `adam.v`")
        }
        var offset = 0
        for (k, t) in checkpointTensors.enumerated() {
            let range = offset..<(offset + t.param.count)
            _ = t.param.update(fromContentsOf: params[range])
            if let s = trainable.state(t.name) {
                m[range].withUnsafeBufferPointer { s.m.update(from: $0.baseAddress!, count: t.param.count) }
                v[range].withUnsafeBufferPointer { s.v.update(from: $0.baseAddress!, count: t.param.count) }
                trainable.steps[s.index] = steps[k]
            }
            offset += t.param.count
        }
        if let mask {
            gates?.set(mask)
            gates?.restoreSettling(settledStep: settling.step, stableSteps: settling.stable)
        }
        self.step = step
    }
}
