import ArgumentParser
import BatchNormKit
import Foundation

/// `bnkit export`: the inference model with BatchNorm folded into the Linears.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Fold every eval-mode BatchNorm into its Linear and save the inference model.",
        discussion: """
            BatchNorm before ReLU folds into the Linear before it: W' = s·W, b' = (b − running_mean)·s + β \
            with s = γ/√(running_var + ε). BatchNorm after ReLU folds into the next Linear. \
            The output is a Linear/ReLU network (layers.0, layers.2, layers.4) that `bnkit eval` loads.
            """
    )

    @Option(help: ArgumentHelp("The trained checkpoint to fold.", valueName: "FILE"))
    var checkpoint: String
    @Option(help: ArgumentHelp("Where to write the folded model (safetensors).", valueName: "OUT"))
    var foldBatchnorm: String

    func run() throws {
        try reportingErrors {
            try checkOutputs([(foldBatchnorm, "folded model", .atomicReplace)])
            let file = try SafeTensorsFile(contentsOf: checkpoint)
            print("model  " + describeArchitecture(of: file, path: checkpoint))
            let model = try SeedNetwork(stateDict: file, path: checkpoint)
            model.eval()
            var metadata = file.metadata.filter { !NetworkArchitecture().metadata.keys.contains($0.key) }
            metadata["created_by"] = "bnkit export"
            metadata["source_checkpoint"] = (checkpoint as NSString).lastPathComponent
            let folded = try model.exportFolded(to: foldBatchnorm, metadata: metadata)
            print("folded \(folded.architecture) — \(model.useBatchNorm ? "BatchNorm folded into the Linears" : "no BatchNorm to fold, copied")")

            // Check the two agree on random inputs in [0, 1) (pixel range); no data needed.
            var generator = SplitMix64(seed: 1)
            let n = 256, features = model.architecture.inputSize
            let x = try Tensor(shape: [n, features], scalars: (0..<(n * features)).map { _ in Float.random(in: 0..<1, using: &generator) })
            let reference = try model.forward(x).copy()
            let output = try folded.forward(x)
            let worst = try reference.maxAbsoluteDifference(to: output), largest = reference.maxMagnitude
            // Float32 rounding scales with the logits, so the relative figure is the telling one.
            print("check  max |logits difference| \(String(format: "%.2e", worst)) on \(n) random inputs"
                  + " (max |logit| \(String(format: "%.1f", largest)), relative \(String(format: "%.1e", worst / max(largest, 1))))")
            guard worst.isFinite, largest.isFinite else {
                throw BatchNormKitError.invalidArgument(name: "folded model check", value: "max |difference| \(worst)",
                                                        requirement: "the logits must be finite; \(foldBatchnorm) was written but does not reproduce the model")
            }
            print("saved  \(foldBatchnorm)")
        }
    }
}
