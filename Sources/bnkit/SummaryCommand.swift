import ArgumentParser
import BatchNormKit

/// `bnkit summary`: a checkpoint's layers, output shapes and value counts.
struct SummaryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "summary",
        abstract: "List a checkpoint's layers with output shape, parameter and buffer counts (like torchinfo)."
    )

    @Option(help: ArgumentHelp("A safetensors checkpoint (bnkit's or PyTorch's).", valueName: "FILE"))
    var checkpoint: String
    @Option(help: "Batch size of the input the output shapes are shown for.")
    var batch: Int = 1

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1, got \(batch)") }
    }

    func run() throws {
        try reportingErrors {
            let file = try SafeTensorsFile(contentsOf: checkpoint)
            print("model  " + describeArchitecture(of: file, path: checkpoint))
            let model = try SeedNetwork(stateDict: file, path: checkpoint)
            print(try model.summary(batch: batch))
        }
    }
}
