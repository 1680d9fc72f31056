import ArgumentParser
import BatchNormKit

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
}
