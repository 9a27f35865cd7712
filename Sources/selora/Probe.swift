import ArgumentParser

struct Probe: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Linear probe (placeholder while Datasets lands).")
    func run() throws {}
}
