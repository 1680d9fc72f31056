import Foundation

// The BatchNorm lab: every claim of the seed lesson measured on real data with
// BatchNormKit's own engine. Each experiment writes a CSV of every run and
// returns its verdicts; ``Lab/run(only:progress:)`` writes `summary.json`,
// which Scripts/plot_report.py turns into charts, REPORT.md and index.html.

/// How big the lab's experiments are. ``full`` and ``quick`` are the
/// `make report` budgets; tests build tiny ones.
public struct LabSettings: Sendable {
    /// "full", "quick" or a test's name; recorded in the summary.
    public var name: String
    /// Seeds where noise can swing a comparison.
    public var seeds: Int
    /// Seeds for the placement and dropout comparisons.
    public var manySeeds: Int
    /// Training samples (the first of the training split) and test samples.
    public var trainSamples: Int, testSamples: Int
    /// Epochs of the convergence and regularization curves; of every other training run.
    public var longEpochs: Int, epochs: Int
    /// The seed lesson's hidden widths.
    public var hiddenSizes: [Int]
    /// Learning-rate and init-scale sweeps; batch sizes of the small-batch experiment.
    public var learningRates: [Float], initScales: [Float], batchSizes: [Int]
    /// The deep sigmoid network of the vanishing-gradient experiment.
    public var deepDepth: Int, deepWidth: Int
    /// Samples of the fixed batch for the landscape measurements; Lanczos steps.
    public var landscapeSamples: Int, lanczosSteps: Int
    /// Training samples of the small-batch experiment (same for every batch size).
    public var smallBatchSamples: Int
    /// The small training set of the regularization experiment.
    public var regularizationSamples: Int
    /// Accuracy the convergence experiment counts epochs to.
    public var targetAccuracy: Double
    /// The convolutional small-batch experiment (11): training and test
    /// samples (the same training samples at every batch size), epochs, batch sizes.
    public var cnnSamples: Int, cnnTestSamples: Int, cnnEpochs: Int, cnnBatchSizes: [Int]
    /// Its CNN: output channels of the convolution blocks, hidden width, and
    /// GroupNorm's groups (must divide every block's channels).
    public var cnnChannels: [Int], cnnHiddenSize: Int, cnnGroups: Int

    public init(name: String, seeds: Int, manySeeds: Int, trainSamples: Int, testSamples: Int, longEpochs: Int, epochs: Int,
                hiddenSizes: [Int], learningRates: [Float], initScales: [Float], batchSizes: [Int], deepDepth: Int, deepWidth: Int,
                landscapeSamples: Int, lanczosSteps: Int, smallBatchSamples: Int, regularizationSamples: Int, targetAccuracy: Double,
                cnnSamples: Int = 10000, cnnTestSamples: Int = 2000, cnnEpochs: Int = 2, cnnBatchSizes: [Int] = [2, 4, 8, 16, 32, 64, 128],
                cnnChannels: [Int] = [16, 32], cnnHiddenSize: Int = 64, cnnGroups: Int = 4) {
        self.name = name; self.seeds = seeds; self.manySeeds = manySeeds
        self.trainSamples = trainSamples; self.testSamples = testSamples
        self.longEpochs = longEpochs; self.epochs = epochs; self.hiddenSizes = hiddenSizes
        self.learningRates = learningRates; self.initScales = initScales; self.batchSizes = batchSizes
        self.deepDepth = deepDepth; self.deepWidth = deepWidth
        self.landscapeSamples = landscapeSamples; self.lanczosSteps = lanczosSteps
        self.smallBatchSamples = smallBatchSamples; self.regularizationSamples = regularizationSamples
        self.targetAccuracy = targetAccuracy
        self.cnnSamples = cnnSamples; self.cnnTestSamples = cnnTestSamples; self.cnnEpochs = cnnEpochs; self.cnnBatchSizes = cnnBatchSizes
        self.cnnChannels = cnnChannels; self.cnnHiddenSize = cnnHiddenSize; self.cnnGroups = cnnGroups
    }

    /// `make report`: 20000 training samples, 3 seeds (5 for placement and dropout);
    /// the CNN experiment on 10000 of them (2000 test samples).
    public static let full = LabSettings(
        name: "full", seeds: 3, manySeeds: 5, trainSamples: 20000, testSamples: 10000, longEpochs: 10, epochs: 4,
        hiddenSizes: [256, 64], learningRates: [0.01, 0.03, 0.1, 0.3, 1, 3], initScales: [0.01, 0.1, 1, 3, 10],
        batchSizes: [2, 4, 8, 32, 128], deepDepth: 10, deepWidth: 128, landscapeSamples: 512, lanczosSteps: 12,
        smallBatchSamples: 8000, regularizationSamples: 2000, targetAccuracy: 0.85,
        cnnSamples: 10000, cnnTestSamples: 2000, cnnEpochs: 2, cnnBatchSizes: [2, 4, 8, 16, 32, 64, 128])

    /// `make report QUICK=1`: the same code paths with fewer samples, epochs, seeds and sweep points.
    public static let quick = LabSettings(
        name: "quick", seeds: 2, manySeeds: 3, trainSamples: 4000, testSamples: 2000, longEpochs: 4, epochs: 2,
        hiddenSizes: [256, 64], learningRates: [0.01, 0.1, 1, 3], initScales: [0.01, 1, 10],
        batchSizes: [4, 32, 128], deepDepth: 10, deepWidth: 64, landscapeSamples: 256, lanczosSteps: 8,
        smallBatchSamples: 2000, regularizationSamples: 1000, targetAccuracy: 0.80,
        cnnSamples: 400, cnnTestSamples: 500, cnnEpochs: 1, cnnBatchSizes: [2, 16, 128])
}

/// One experiment's outcome, as `summary.json` records it.
public struct ExperimentReport: Sendable {
    /// 1 … 11, and the CSV/PNG file stem (e.g. `01-convergence`).
    public let number: Int
    public let slug: String
    public let title: String
    /// The lesson's words this experiment tests.
    public let claim: String
    /// The question in the report's words.
    public let question: String
    /// The first verdict is the summary table's; the rest are shown in the section.
    public let verdicts: [(name: String, verdict: Verdict)]
    /// Network, data, epochs, lr, seeds.
    public let settings: String
    /// Free-text notes computed from the run (e.g. divergence counts).
    public let notes: [String]
    public var seconds: Double = 0
}

/// The lab: data, settings, output directory.
public final class Lab {
    public let settings: LabSettings
    public let train: LabeledSamples
    public let test: LabeledSamples
    public let directory: String
    /// Where the data came from, for the report.
    public let dataDescription: String

    /// - Parameters:
    ///   - settings: the experiments' sizes, seeds and sweeps.
    ///   - train: standardized training samples; the first `settings.trainSamples` are used.
    ///   - test: standardized test samples; the first `settings.testSamples` are used.
    ///   - directory: created if missing; must be writable (checked here, before any work).
    ///   - dataDescription: where the data came from, for the report.
    public init(settings: LabSettings, train: LabeledSamples, test: LabeledSamples, directory: String, dataDescription: String) throws {
        self.settings = settings
        self.train = try train.prefix(settings.trainSamples)
        self.test = try test.prefix(settings.testSamples)
        self.directory = directory
        self.dataDescription = dataDescription
        try Self.prepareDirectory(directory)
    }

    /// Creates `directory` if missing and checks a file can be written there,
    /// so a bad output path fails before any data is read or trained on.
    public static func prepareDirectory(_ directory: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw BatchNormKitError.fileUnreadable(path: directory, reason: "cannot create the report directory: \(error.localizedDescription)")
        }
        try _writeFile(directory + "/.write-check", "")
        try? FileManager.default.removeItem(atPath: directory + "/.write-check")
    }

    /// The experiments by number.
    public static let experimentNumbers = Array(1...11)

    /// Runs the experiments in `only` (all by default), writing each CSV as it
    /// finishes and `summary.json` at the end. `progress` gets one line per event.
    @discardableResult
    public func run(only: [Int] = Lab.experimentNumbers, progress: (String) -> Void = { _ in }) throws -> [ExperimentReport] {
        var reports: [ExperimentReport] = []
        let start = ContinuousClock.now
        for number in only {
            let began = ContinuousClock.now
            progress("[\(number)/\(Self.experimentNumbers.count)] \(Self.titles[number - 1]) …")
            var report = try experiment(number)
            report.seconds = _seconds(ContinuousClock.now - began)
            progress("[\(number)/\(Self.experimentNumbers.count)] \(report.verdicts.first.map { "\($0.verdict.outcome.rawValue): \($0.verdict.figure)" } ?? "") (\(_fixed(report.seconds, 1)) s)")
            reports.append(report)
            try writeSummary(reports, seconds: _seconds(ContinuousClock.now - start), partial: Set(only) != Set(Self.experimentNumbers))
        }
        return reports
    }

    static let titles = ["Faster convergence", "Larger learning rates", "Less dependence on initialization",
                         "Vanishing gradients and saturation", "Small batches", "Placement", "Dropout with BatchNorm",
                         "Smoother landscape", "Internal covariate shift", "Regularization",
                         "Small batches in a CNN"]

    func experiment(_ number: Int) throws -> ExperimentReport {
        switch number {
        case 1: try convergence()
        case 2: try learningRates()
        case 3: try initialization()
        case 4: try vanishingGradients()
        case 5: try smallBatches()
        case 6: try placement()
        case 7: try dropout()
        case 8: try landscape()
        case 9: try covariateShift()
        case 10: try regularization()
        case 11: try convolutionalSmallBatches()
        default: throw BatchNormKitError.invalidArgument(name: "experiment", value: "\(number)", requirement: "must be in 1…\(Self.experimentNumbers.count)")
        }
    }

    // MARK: - Shared pieces

    /// The seed lesson's network (hidden widths of the settings) with these options.
    func seedSpec(norm: NormKind = .batchnorm, placement: NormPlacement = .before, activation: ActivationKind = .relu,
                  dropout: Float = 0, alphaDropout: Float = 0, initScale: Float = 1) -> NetworkSpec {
        NetworkSpec(inputSize: train.featureCount, hiddenSizes: settings.hiddenSizes, classes: classCount, norm: norm,
                    placement: placement, activation: activation, dropout: dropout, alphaDropout: alphaDropout, initScale: initScale)
    }

    var classCount: Int { Int(max(train.labels.max() ?? 0, test.labels.max() ?? 0)) + 1 }

    /// The lesson's recipe: SGD momentum 0.9, batch 128.
    func recipe(epochs: Int, learningRate: Float = 0.1, batchSize: Int = 128, seed: UInt64) -> TrainingConfiguration {
        // a batch never exceeds the training set (the Trainer refuses that); only tiny test sets are that small
        TrainingConfiguration(epochs: epochs, batchSize: min(batchSize, train.count), learningRate: learningRate, momentum: 0.9, seed: seed)
    }

    /// "n seeds (0…n−1)".
    func seedText(_ n: Int) -> String { "\(n) seeds (0…\(n - 1))" }

    /// What every training-based experiment states about data.
    var dataText: String { "\(train.count) training / \(test.count) test samples of \(dataDescription)" }

    /// Writes `rows` under `header` to `<directory>/<slug>.csv`.
    func writeCSV(_ slug: String, header: [String], rows: [[String]]) throws {
        var text = header.joined(separator: ",") + "\n"
        for row in rows { text += row.joined(separator: ",") + "\n" }
        try _writeFile("\(directory)/\(slug).csv", text)
    }

    /// Writes `summary.json`. After a partial run (`--only`), the experiments of an
    /// earlier summary of the same mode that were not re-run are kept, so one
    /// experiment can be re-measured without running the others again.
    private func writeSummary(_ reports: [ExperimentReport], seconds: Double, partial: Bool) throws {
        let path = "\(directory)/summary.json"
        var experiments: [[String: Any]] = reports.map { r in
            ["number": r.number, "slug": r.slug, "title": r.title, "claim": r.claim, "question": r.question,
             "settings": r.settings, "seconds": (r.seconds * 10).rounded() / 10, "notes": r.notes,
             "verdicts": r.verdicts.map { ["name": $0.name, "outcome": $0.verdict.outcome.rawValue,
                                           "figure": $0.verdict.figure, "rule": $0.verdict.rule] }]
        }
        if partial, let data = FileManager.default.contents(atPath: path),
           let old = try? JSONSerialization.jsonObject(with: data) as? [String: Any], old["mode"] as? String == settings.name,
           let kept = old["experiments"] as? [[String: Any]] {
            let fresh = Set(reports.map(\.number))
            experiments += kept.filter { !fresh.contains($0["number"] as? Int ?? 0) }
            experiments.sort { ($0["number"] as? Int ?? 0) < ($1["number"] as? Int ?? 0) }
        }
        let total = experiments.reduce(0.0) { $0 + ($1["seconds"] as? Double ?? 0) }
        let summary: [String: Any] = ["mode": settings.name, "data": dataText, "threads": threadCount(),
                                      "seconds": partial ? (total * 10).rounded() / 10 : (seconds * 10).rounded() / 10,
                                      "experiments": experiments]
        let data = try JSONSerialization.data(withJSONObject: summary, options: [.prettyPrinted, .sortedKeys])
        try _writeFile(path, String(decoding: data, as: UTF8.self) + "\n")
    }
}

/// Writes `text` to `path` or throws `fileUnreadable` saying why.
func _writeFile(_ path: String, _ text: String) throws {
    guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8)) else {
        throw BatchNormKitError.fileUnreadable(path: path, reason: "cannot write the file")
    }
}

extension LabeledSamples {
    /// The first `n` samples (all when n ≥ count).
    public func prefix(_ n: Int) throws -> LabeledSamples {
        let k = Swift.min(Swift.max(n, 0), count)
        if k == count { return self }
        return try LabeledSamples(features: Array(features[..<(k * featureCount)]), labels: Array(labels[..<k]), featureCount: featureCount)
    }
}
