import ArgumentParser

@main
struct Selora: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selora",
        abstract: "Selective-LoRA fine-tuning of pretrained vision transformers (DINOv2 ViT, CLIP) on OpenBLAS and Open MPI.",
        subcommands: [Train.self, Eval.self, Test.self, Merge.self, Grad.self, Info.self, Embed.self, Pixels.self, Probe.self, Convert.self, Bench.self, MPICheck.self,
                      TextEmbed.self, ClipCompose.self, ClipEval.self])
}
