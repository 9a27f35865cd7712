import Tensors

/// The LoRA blocks of a model: one per (layer, target), each with A [r, in], B [out, r] and a gate score.
///
/// Parameters live in one ``TensorStore`` (A then B, block after block, in a fixed order: layer-major, targets in
/// ``LoRATarget`` order); gradients use the same layout. The gate of each block (score and mask) lives in
/// ``gates``, the only place the gate rule is written.
public final class LoRAAdapters {
    public struct Block: Equatable {
        public let index: Int
        public let layer: Int
        public let target: LoRATarget
        public let inFeatures: Int
        public let outFeatures: Int
        /// Module path, e.g. `encoder.layer.3.mlp.fc1`.
        public var path: String { target.modulePath(layer: layer) }
        public var aName: String { "\(path).lora_A" }
        public var bName: String { "\(path).lora_B" }
        /// Module path in ``LoRAAdapters/exportFormat``'s names (the internal ``path`` where that format has none),
        /// the key of ``LoRAAdapters/peftKey(_:_:)``.
        public let exportPath: String
    }

    public let model: ViTConfig
    public let config: LoRAConfig
    /// The names the adapter was read in, or is written in by default (``save(directory:gated:baseModel:format:)``).
    public let exportFormat: WeightFormat
    public let blocks: [Block]
    public let params: TensorStore
    /// Each block's score and gate (``Gates``).
    public let gates: Gates
    /// blockIndex[layer][target.position] (nil when that Linear has no block): no hashing per pass.
    let blockIndex: [[Int?]]
    /// The blocks of each layer, as a range of block indices (blocks are numbered layer by layer).
    public let layerBlocks: [Range<Int>]

    /// A (Kaiming-uniform, a = √5, i.e. U(±1/√in), as PEFT and `nn.Linear` initialise) from `seed`, B = 0,
    /// every score at `config.initialScore`, every block active. `exportFormat` nil: `model.weightFormat`.
    public init(model: ViTConfig, config: LoRAConfig, seed: UInt64, exportFormat: WeightFormat? = nil) throws {
        try config.validate()
        self.model = model
        self.config = config
        let exportFormat = exportFormat ?? model.weightFormat
        self.exportFormat = exportFormat
        var blocks: [Block] = []
        var index = [[Int?]](repeating: [Int?](repeating: nil, count: LoRATarget.allCases.count), count: model.numLayers)
        for l in 0..<model.numLayers {
            for t in LoRATarget.allCases where config.targets.contains(t) {
                let f = t.features(model)
                index[l][t.position] = blocks.count
                blocks.append(Block(index: blocks.count, layer: l, target: t, inFeatures: f.in, outFeatures: f.out,
                                    exportPath: (try? t.modulePath(layer: l, format: exportFormat)) ?? t.modulePath(layer: l)))
            }
        }
        precondition(LoRATarget.allCases.enumerated().allSatisfy { $0.offset == $0.element.position }, "LoRATarget.position")
        self.blocks = blocks
        self.blockIndex = index
        layerBlocks = (0..<model.numLayers).map { l in
            let first = blocks.firstIndex { $0.layer == l } ?? blocks.count
            return first..<(blocks.lastIndex { $0.layer == l }.map { $0 + 1 } ?? first)
        }
        let store = try TensorStore(layout: LoRAAdapters.layout(blocks, rank: config.rank))
        precondition(blocks.allSatisfy { store.layout.entries[2 * $0.index].name == $0.aName }, "LoRA layout order")
        params = store
        gates = try Gates(count: blocks.count, threshold: config.threshold, initialScore: config.initialScore)
        var rng = SeededRandom(seed: seed, stream: "lora-init")
        for b in blocks {
            let a = params.buffer(b.aName), bound = 1 / Float(b.inFeatures).squareRoot()
            for i in 0..<a.count { a[i] = rng.uniform(-bound, bound) }
        }
    }

    /// Positions of a block's A and B in ``params``' layout (A then B, block after block).
    public func tensorIndices(_ b: Block) -> (a: Int, b: Int) { (2 * b.index, 2 * b.index + 1) }

    static func layout(_ blocks: [Block], rank: Int) -> TensorLayout {
        var l = TensorLayout()
        for b in blocks {
            l.add(b.aName, [rank, b.inFeatures])
            l.add(b.bName, [b.outFeatures, rank])
        }
        return l
    }

    /// A store with the parameters' layout (for gradients and optimizer moments).
    public func makeStore() throws -> TensorStore { try TensorStore(layout: params.layout) }

    public func block(layer: Int, target: LoRATarget) -> Block? { blockIndex[layer][target.position].map { blocks[$0] } }

    /// A [r, in] and B [out, r] of a block, in the parameters or in a store of the same layout (gradients); by
    /// layout position, so no name is built or hashed.
    public func a(_ b: Block, in store: TensorStore? = nil) -> UnsafeMutablePointer<Float> {
        (store ?? params).pointer(tensorIndices(b).a)
    }
    public func b(_ b: Block, in store: TensorStore? = nil) -> UnsafeMutablePointer<Float> {
        (store ?? params).pointer(tensorIndices(b).b)
    }

    public var activeCount: Int { gates.activeCount }

    /// The lowest layer holding an active block — where a backward for the adapters alone can stop — or nil
    /// when no block is active.
    public var lowestActiveLayer: Int? { layerBlocks.firstIndex { $0.contains { gates.mask[$0] } } }

    /// Trainable LoRA parameters of the active blocks (A and B; scores not counted).
    public var activeParameterCount: Int {
        blocks.filter { gates.mask[$0.index] }.reduce(0) { $0 + config.rank * ($1.inFeatures + $1.outFeatures) }
    }
}

extension LoRATarget {
    /// Position in ``LoRATarget/allCases`` (an array index, so per-pass block lookups hash nothing).
    var position: Int {
        switch self {
        case .query: return 0
        case .key: return 1
        case .value: return 2
        case .output: return 3
        case .fc1: return 4
        case .fc2: return 5
        }
    }
}
