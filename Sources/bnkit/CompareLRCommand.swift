import ArgumentParser
import BatchNormKit
import Foundation

/// `bnkit compare-lr`: the seed's claim that BatchNorm tolerates a learning
/// rate at which the plain network diverges.
struct CompareLRCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare-lr",
        abstract: "Train with and without BatchNorm at several learning rates and compare.",
        discussion: "A run diverges when its loss stops being finite (training stops there: diverged at epoch k, step s) or its test accuracy is at most 20%."
    )

    @OptionGroup var options: RunOptions
    @Option(name: .customLong("lrs"), parsing: .upToNextOption, help: "Learning rates to compare.")
    var learningRates: [Float] = [0.1, 1.0]
    @Option(help: "BatchNorm before or after each ReLU.")
    var placement: PlacementChoice = .before
    @OptionGroup var threads: ThreadOptions
    @OptionGroup var data: DataOptions
    @OptionGroup var input: InputOptions

    func validate() throws {
        guard !learningRates.isEmpty, learningRates.allSatisfy({ $0.isFinite && $0 > 0 }) else {
            throw ValidationError("--lrs needs one or more finite learning rates > 0")
        }
    }

    /// One finished run.
    struct Outcome {
        let norm: NormChoice
        let learningRate: Float
        /// The last epoch's metrics; nil when the loss stopped being finite.
        let last: EpochMetrics?
        /// Where the loss stopped being finite, when it did.
        var stoppedAt: (epoch: Int, step: Int)? = nil
        var diverged: Bool { last.map { $0.testAccuracy <= 0.20 } ?? true }
        var accuracy: Double { last?.testAccuracy ?? .nan }
    }

    func run() throws {
        try reportingErrors {
            try threads.apply()
            let (dataset, _) = try data.load()
            let (train, test, _) = try input.prepare(dataset)
            let batchSize = try effectiveBatchSize(options.batchSize, samples: train.count)
            print("compare-lr: \(options.epochs) epochs, batch \(options.batchSize), momentum \(options.momentum), seed \(options.seed), BatchNorm \(placement.rawValue) ReLU")

            var outcomes: [Outcome] = []
            for lr in learningRates {
                for norm in NormChoice.allCases {
                    let model = try SeedNetwork(inputSize: train.featureCount, batchNorm: norm == .batchnorm,
                                                placement: placement.placement, seed: options.seed)
                    var configuration = options.configuration(learningRate: lr)
                    configuration.batchSize = batchSize
                    let progress = ProgressReporter(totalEpochs: options.epochs)
                    progress.prefix = "\(norm.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0)) lr \(lr)  "
                    do {
                        let history = try Trainer(model: model, configuration: configuration)
                            .fit(train: train, test: test, onBatch: progress.batchDone, onEpoch: progress.epochDone)
                        outcomes.append(Outcome(norm: norm, learningRate: lr, last: history.last))
                    } catch let BatchNormKitError.diverged(epoch, step, _) {
                        print("\(progress.prefix)diverged at epoch \(epoch), step \(step): the loss is not finite")
                        outcomes.append(Outcome(norm: norm, learningRate: lr, last: nil, stoppedAt: (epoch, step)))
                    }
                }
            }

            print("")
            print("norm       lr      train loss  test loss  test acc  verdict")
            for o in outcomes {
                let cells = o.last.map { [decimal($0.trainLoss), decimal($0.testLoss), percent($0.testAccuracy)] } ?? ["-", "-", "-"]
                let verdict = o.stoppedAt.map { "diverged at epoch \($0.epoch), step \($0.step)" } ?? (o.diverged ? "diverges" : "trains")
                let row = [o.norm.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0),
                           "\(o.learningRate)".padding(toLength: 6, withPad: " ", startingAt: 0),
                           cells[0].padding(toLength: 10, withPad: " ", startingAt: 0),
                           cells[1].padding(toLength: 9, withPad: " ", startingAt: 0),
                           cells[2].padding(toLength: 8, withPad: " ", startingAt: 0),
                           verdict]
                print(row.joined(separator: "  "))
            }
            // The issue's claim at lr 1.0: BatchNorm trains (> 80%), the plain network diverges.
            if let bn = outcomes.first(where: { $0.norm == .batchnorm && $0.learningRate == 1 }),
               let plain = outcomes.first(where: { $0.norm == NormChoice.none && $0.learningRate == 1 }) {
                let holds = bn.accuracy > 0.80 && !bn.diverged && plain.diverged
                print("")
                print("lr 1.0: BatchNorm \(bn.stoppedAt == nil ? percent(bn.accuracy) : "diverges"), without \(plain.diverged ? "diverges" : percent(plain.accuracy))"
                      + " — claim \(holds ? "holds" : "does NOT hold") (BatchNorm > 80% while the plain network diverges)")
            }
        }
    }
}
