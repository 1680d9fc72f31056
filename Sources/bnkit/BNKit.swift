import ArgumentParser
import BatchNormKit
import Foundation

/// `bnkit`: train, evaluate and export the seed network on Fashion-MNIST.
#if !FUZZING   // `make fuzz` builds bnkit as a libFuzzer target over its own arguments (FuzzArguments.swift)
@main
#endif
struct BNKit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bnkit",
        abstract: "Batch normalization on Fashion-MNIST: train, evaluate and fold the seed network.",
        discussion: """
            The seed network is 784 → Linear 256 → BatchNorm1d → ReLU → Linear 64 → BatchNorm1d → ReLU → Linear 10. \
            Checkpoints are safetensors files with PyTorch's state_dict names, readable by \
            safetensors.torch.load_file and loadable with model.load_state_dict.
            """,
        version: "bnkit \(bnkitVersion) (BatchNormKit)",
        subcommands: [TrainCommand.self, EvalCommand.self, ExportCommand.self, CompareLRCommand.self, HessianCommand.self,
                      SummaryCommand.self, LabCommand.self]
    )

    /// ArgumentParser's `main()`, with its message written in one `write`:
    /// the ranks of an MPI job share one stderr, and the default writer's
    /// many small writes interleaved two ranks' refusals character by
    /// character ("EError: started as one orf r2o…").
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            let message = fullMessage(for: error)
            if !message.isEmpty {
                let handle = code == .success ? FileHandle.standardOutput : FileHandle.standardError
                handle.write(Data((message + "\n").utf8))
            }
            Foundation.exit(code.rawValue)
        }
    }
}
