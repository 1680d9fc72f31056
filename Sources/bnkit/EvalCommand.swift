import ArgumentParser
import BatchNormKit
import Foundation

/// `bnkit eval`: a checkpoint's test accuracy, loss and per-class accuracy.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate a checkpoint (bnkit's or PyTorch's) on the test split.",
        discussion: """
            The network is rebuilt from the file's metadata; a file saved by PyTorch \
            (safetensors.torch.save_file(model.state_dict(), path)) has none, and the \
            architecture is inferred from its tensor names and shapes.
            """
    )

    @Option(help: ArgumentHelp("A safetensors checkpoint.", valueName: "FILE"))
    var checkpoint: String
    @Option(help: "Samples per forward pass (memory and speed only).")
    var batchSize: Int = 1000
    @OptionGroup var scale: EvalInputOptions
    @OptionGroup var threads: ThreadOptions
    @OptionGroup var data: DataOptions

    func validate() throws {
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1, got \(batchSize)") }
    }

    func run() throws {
        try reportingErrors {
            try threads.apply()
            let file = try SafeTensorsFile(contentsOf: checkpoint)
            // Said before loading, so a mismatch error shows what the file was checked against.
            // (a built network is named from its spec, once that spec has loaded)
            let isBuilt = try !CNNArchitecture.describes(file) && NetworkSpec(metadata: file.metadata, path: checkpoint) != nil
            if !isBuilt { print("model  " + describeNetwork(of: file, path: checkpoint)) }
            let (model, description) = try loadCheckpointNetwork(stateDict: file, path: checkpoint)
            if isBuilt { print("model  \(description) (from metadata)") }

            let (dataset, _) = try data.load()
            let start = ContinuousClock.now
            // apply the training run's input standardization, if it recorded one
            let (standardization, source) = try scale.standardization(for: file, path: checkpoint)
            let test = try standardization.map { try $0.apply(to: LabeledSamples(dataset.test)) } ?? LabeledSamples(dataset.test)
            print("input  " + (standardization.map { "standardized: (x − \($0.mean)) / \($0.std), \(source)" } ?? "raw pixels in [0, 1], \(source)"))
            let result = try model.evaluate(on: test, batchSize: batchSize)
            let elapsed = seconds(since: start)
            print("test   accuracy \(percent(result.accuracy)), loss \(decimal(result.loss))"
                  + " (\(result.sampleCount) samples, \(String(format: "%.3f", elapsed)) s)")
            let names = classNames(result.countPerClass.count)
            let width = max(names.map(\.count).max() ?? 0, 5)
            print("class".padding(toLength: width, withPad: " ", startingAt: 0) + "  accuracy  correct/total")
            for (index, accuracy) in result.classAccuracies.enumerated() {
                let name = names[index].padding(toLength: width, withPad: " ", startingAt: 0)
                let shown = accuracy.map(percent) ?? "-"
                print("\(name)  \(shown.padding(toLength: 8, withPad: " ", startingAt: 0))  "
                      + "\(result.correctPerClass[index])/\(result.countPerClass[index])")
            }
            guard result.loss.isFinite else {
                throw BatchNormKitError.invalidArgument(name: "evaluation loss", value: "\(result.loss)",
                                                        requirement: "must be finite: the model's outputs overflow on this data")
            }
        }
    }
}
