import ArgumentParser
import BatchNormKit
import Foundation

/// `bnkit hessian`: the seed's claim that BatchNorm smooths the loss landscape,
/// measured as the top eigenvalues of the loss Hessian along training, with and
/// without BatchNorm, from the same seed and data order.
struct HessianCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hessian",
        abstract: "Top Hessian eigenvalues of the training loss along training, with and without BatchNorm.",
        discussion: """
            Before training and after every epoch, the largest eigenvalues of the Hessian of the \
            mean cross-entropy on a fixed batch of training samples (the first --samples, in training \
            mode) are estimated by Lanczos on finite-difference Hessian-vector products \
            (HessianSpectrum; the tridiagonal matrix is diagonalized by LAPACK). A smaller top \
            eigenvalue is a flatter, smoother landscape: the larger step sizes BatchNorm allows. \
            Scripts/plot_experiments.py draws the CSV.
            """
    )

    @OptionGroup var recipe: RecipeOptions
    @Option(help: "BatchNorm before or after each ReLU.")
    var placement: PlacementChoice = .before
    @Option(help: "Training samples in the fixed batch the Hessian is measured on.")
    var samples: Int = 1024
    @Option(help: "Eigenvalues reported, largest first.")
    var top: Int = 3
    @Option(help: "Lanczos steps (two gradient evaluations each).")
    var lanczosSteps: Int = 20
    @Option(help: ArgumentHelp("Write the measurements here as CSV.", valueName: "FILE"))
    var output: String?
    @OptionGroup var threads: ThreadOptions
    @OptionGroup var data: DataOptions
    @OptionGroup var input: InputOptions

    func validate() throws {
        guard samples >= 2 else { throw ValidationError("--samples must be at least 2, got \(samples)") }
        guard top >= 1, lanczosSteps >= top else { throw ValidationError("--lanczos-steps must be ≥ --top ≥ 1") }
        // full reorthogonalization keeps every step's vector: 1000 steps of the seed network are 1.8 GB
        guard lanczosSteps <= 1000 else { throw ValidationError("--lanczos-steps must be at most 1000, got \(lanczosSteps)") }
    }

    func run() throws {
        try reportingErrors {
            try checkOutputs([(output, "CSV", .atomicReplace)])
            try threads.apply()
            let (dataset, _) = try data.load()
            let (train, test, _) = try input.prepare(dataset)
            let n = min(samples, train.count), features = train.featureCount
            let batch = try Tensor(shape: [n, features], scalars: Array(train.features[..<(n * features)]))
            let labels = Array(train.labels[..<n])
            var configuration = recipe.configuration()
            configuration.batchSize = try effectiveBatchSize(configuration.batchSize, samples: train.count)
            print("hessian: \(configuration.epochs) epochs, batch \(configuration.batchSize), SGD lr \(configuration.learningRate)"
                  + " momentum \(configuration.momentum), seed \(configuration.seed); Hessian on \(n) training samples,"
                  + " \(lanczosSteps) Lanczos steps")
            let columns = (1...top).map { "lambda_\($0)" }
            var csv = "norm,epoch,train_loss,test_accuracy," + columns.joined(separator: ",") + ",hessian_seconds\n"
            print("norm       epoch  train loss  test acc  " + columns.map { $0.padding(toLength: 10, withPad: " ", startingAt: 0) }.joined(separator: "  "))
            for norm in NormChoice.allCases {
                let model = try SeedNetwork(inputSize: features, batchNorm: norm == .batchnorm,
                                            placement: placement.placement, seed: configuration.seed)
                let trainer = try Trainer(model: model, configuration: configuration)
                for epoch in 0...configuration.epochs {
                    var trainLoss = Double.nan
                    if epoch > 0 { trainLoss = try trainer.trainEpoch(on: train).loss }
                    let accuracy = try trainer.evaluate(on: test).accuracy
                    model.train()
                    let start = ContinuousClock.now
                    let eigenvalues = try HessianSpectrum.topEigenvalues(of: model, inputs: batch, labels: labels, count: top,
                                                                         steps: lanczosSteps, seed: configuration.seed)
                    let elapsed = seconds(since: start)
                    let loss = epoch == 0 ? "" : decimal(trainLoss)
                    csv += "\(norm.rawValue),\(epoch),\(loss),\(accuracy)," + eigenvalues.map { "\($0)" }.joined(separator: ",")
                        + ",\(String(format: "%.2f", elapsed))\n"
                    print([norm.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0),
                           "\(epoch)".padding(toLength: 5, withPad: " ", startingAt: 0),
                           (epoch == 0 ? "-" : decimal(trainLoss)).padding(toLength: 10, withPad: " ", startingAt: 0),
                           percent(accuracy).padding(toLength: 8, withPad: " ", startingAt: 0)]
                          .joined(separator: "  ") + "  " + eigenvalues.map { decimal($0, 3).padding(toLength: 10, withPad: " ", startingAt: 0) }.joined(separator: "  "))
                }
            }
            if let output {
                try OutputPath.writeAtomically(Array(csv.utf8), to: output)
                print("wrote  \(output)")
            }
        }
    }
}
