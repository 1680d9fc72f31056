import Testing
import Foundation
@testable import BatchNormKit

// The lab's Swift part end to end on a tiny synthetic dataset (the quick
// mode's code paths at toy sizes: seconds in a debug build), and its verdict
// rules on constructed inputs.

/// Three Gaussian blobs in `dimensions` (16: 4×4 "images" for experiment 11's
/// CNN): learnable, so training means something.
private func blobs(count: Int, seed: UInt64, dimensions: Int = 16) throws -> LabeledSamples {
    var g = SplitMix64(seed: seed)
    var features: [Float] = [], labels: [Int32] = []
    for i in 0..<count {
        let label = Int32(i % 3)
        for j in 0..<dimensions {
            let centre: Float = j % 3 == Int(label) ? 1.5 : 0
            features.append(centre + Float.random(in: -1...1, using: &g))
        }
        labels.append(label)
    }
    return try LabeledSamples(features: features, labels: labels, featureCount: dimensions)
}

private let tinySettings = LabSettings(
    name: "test", seeds: 2, manySeeds: 2, trainSamples: 96, testSamples: 48, longEpochs: 2, epochs: 1,
    hiddenSizes: [8, 8], learningRates: [0.1, 3], initScales: [0.1, 1], batchSizes: [2, 8], deepDepth: 10, deepWidth: 8,
    landscapeSamples: 32, lanczosSteps: 3, smallBatchSamples: 32, regularizationSamples: 32, targetAccuracy: 0.5,
    cnnSamples: 32, cnnTestSamples: 24, cnnEpochs: 1, cnnBatchSizes: [8, 2], cnnChannels: [4], cnnHiddenSize: 8, cnnGroups: 2)

/// Every CSV the lab writes, its columns, and the columns that may hold `nan`
/// in a run that did not diverge (epoch 0 has no training loss; the head has no saturation).
private let expectedCSVs: [(name: String, columns: [String], mayBeNaN: Set<String>)] = [
    ("01-convergence", ["norm", "seed", "epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "diverged"], []),
    ("02-learning-rates", ["norm", "learning_rate", "seed", "test_accuracy", "test_loss", "diverged_epoch", "diverged"], []),
    ("03-initialization", ["norm", "init_scale", "seed", "test_accuracy", "test_loss", "diverged"], []),
    ("04-vanishing-gradients", ["norm", "init_scale", "seed", "step", "layer", "weight_grad_norm", "saturated_fraction"], ["saturated_fraction"]),
    ("05-small-batches", ["norm", "batch_size", "learning_rate", "seed", "test_accuracy", "train_mode_accuracy", "train_eval_gap", "diverged"], []),
    ("06-placement", ["placement", "seed", "epoch", "train_loss", "test_loss", "test_accuracy", "diverged"], []),
    ("07-dropout", ["configuration", "seed", "test_accuracy", "test_loss", "eval_var_over_running_var", "diverged"], ["eval_var_over_running_var"]),
    ("08-landscape", ["norm", "seed", "epoch", "train_loss", "loss_range", "gradient_change", "beta_smoothness", "lambda_max", "diverged"], ["train_loss"]),
    ("09-covariate-shift", ["norm", "seed", "step", "layer", "quantity", "mean", "std"], []),
    ("09-santurkar-ics", ["norm", "seed", "step", "layer", "relative_gradient_change", "cosine"], []),
    ("10-regularization", ["norm", "seed", "epoch", "train_accuracy", "test_accuracy", "gap", "diverged"], []),
    ("10-batch-noise", ["seed", "batch_size", "mean_noise", "std_noise", "one_over_sqrt_b"], []),
    ("11-cnn-small-batches", ["norm", "batch_size", "learning_rate", "seed", "test_accuracy", "train_mode_accuracy", "train_eval_gap", "diverged"], []),
]

@Suite("BatchNorm lab")
struct LabTests {
    @Test("all eleven experiments on tiny synthetic data: every CSV with its columns and finite numbers, a computed verdict each")
    func endToEnd() throws {
        let directory = makeTemporaryDirectory("lab")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let lab = try Lab(settings: tinySettings, train: try blobs(count: 96, seed: 1), test: try blobs(count: 48, seed: 2),
                          directory: directory, dataDescription: "synthetic blobs")
        var lines: [String] = []
        let reports = try lab.run { lines.append($0) }
        #expect(reports.map(\.number) == Array(1...11))
        #expect(lines.count == 22, "a start and an end line per experiment")
        for report in reports {
            #expect(!report.verdicts.isEmpty && report.seconds >= 0, "\(report.slug)")
            #expect(!report.claim.isEmpty && !report.settings.isEmpty && !report.question.isEmpty)
        }
        for (name, columns, mayBeNaN) in expectedCSVs {
            let path = "\(directory)/\(name).csv"
            let text = try #require(try? String(contentsOfFile: path, encoding: .utf8), "\(name).csv missing")
            let table = text.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
            #expect(table.first == columns, "\(name) header")
            #expect(table.count > 1, "\(name) has rows")
            let divergedColumn = columns.firstIndex(of: "diverged")
            for row in table.dropFirst() {
                #expect(row.count == columns.count, "\(name): \(row)")
                let diverged = divergedColumn.map { !row[$0].isEmpty } ?? false
                for (column, value) in zip(columns, row) where !["norm", "placement", "configuration", "quantity", "diverged", "diverged_epoch"].contains(column) {
                    let number = try #require(Double(value), "\(name).\(column) = \"\(value)\" is not a number")
                    #expect(number.isFinite || diverged || mayBeNaN.contains(column), "\(name).\(column) = \(value) in \(row)")
                }
            }
        }
        // experiment 11: every norm at every batch size and seed, the batch sizes in order, five verdicts
        let cnnRows = try String(contentsOfFile: "\(directory)/11-cnn-small-batches.csv", encoding: .utf8)
            .split(separator: "\n").dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        #expect(cnnRows.count == 3 * 2 * 2)
        #expect(Set(cnnRows.map { $0[0] }) == ["batchnorm2d", "groupnorm", "instancenorm"] && cnnRows.prefix(2).allSatisfy { $0[1] == "2" })
        for row in cnnRows where row[0] != "batchnorm2d" && row[7].isEmpty {
            #expect(Double(row[6]) == 0, "GroupNorm/InstanceNorm use no batch statistics: train mode = eval mode, \(row)")
        }
        let cnn = try #require(reports.last)
        #expect(cnn.verdicts.count == 5 && cnn.verdicts[0].verdict.figure.contains("batch 2:") && cnn.settings.contains("32 training samples"))
        // summary.json: valid JSON, eleven experiments, outcomes from the rule's vocabulary
        let data = try Data(contentsOf: URL(fileURLWithPath: "\(directory)/summary.json"))
        let summary = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let experiments = try #require(summary["experiments"] as? [[String: Any]])
        #expect(experiments.count == 11)
        // re-measuring one experiment (`bnkit lab --only 11`) keeps the other ten in the summary
        try lab.run(only: [11])
        let again = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(directory)/summary.json"))) as? [String: Any]
        #expect((again?["experiments"] as? [[String: Any]])?.compactMap { $0["number"] as? Int } == Array(1...11))
        for e in experiments {
            let verdicts = try #require(e["verdicts"] as? [[String: String]])
            for v in verdicts {
                #expect(VerdictOutcome(rawValue: v["outcome"] ?? "") != nil && !(v["rule"] ?? "").isEmpty && !(v["figure"] ?? "").isEmpty)
            }
        }
    }

    @Test("the two-sample rule: a clear difference holds, no difference is not shown, the opposite is reversed")
    func compareRule() {
        let low = [0.80, 0.81, 0.79], high = [0.88, 0.87, 0.89]
        #expect(VerdictRule.compare(claimed: high, baseline: low, higherIsBetter: true) == .holds)
        #expect(VerdictRule.compare(claimed: low, baseline: high, higherIsBetter: true) == .reversed)
        #expect(VerdictRule.compare(claimed: low, baseline: high, higherIsBetter: false) == .holds)
        // overlapping: means differ by 0.01, pooled std 0.05 → within 2σ
        #expect(VerdictRule.compare(claimed: [0.85, 0.90, 0.80], baseline: [0.84, 0.89, 0.79], higherIsBetter: true) == .notShown)
        #expect(VerdictRule.compare(claimed: low, baseline: low, higherIsBetter: true) == .notShown)
        // a difference just beyond 2 pooled std holds, just within does not
        let a = [1.0, 2.0, 3.0]   // std 1
        #expect(VerdictRule.compare(claimed: a.map { $0 + 2.01 }, baseline: a, higherIsBetter: true) == .holds)
        #expect(VerdictRule.compare(claimed: a.map { $0 + 1.99 }, baseline: a, higherIsBetter: true) == .notShown)
        // diverged runs (NaN) are left out; a side whose every run diverged loses
        #expect(VerdictRule.compare(claimed: [0.8, 0.8], baseline: [.nan, .nan], higherIsBetter: true) == .holds)
        #expect(VerdictRule.compare(claimed: [.nan], baseline: [0.1], higherIsBetter: true) == .reversed)
        #expect(VerdictRule.compare(claimed: [.nan], baseline: [.nan], higherIsBetter: true) == .notShown)
        #expect(VerdictRule.compare(claimed: [0.9, .nan, 0.9], baseline: [0.8, 0.8], higherIsBetter: true) == .holds)
    }

    @Test("the 'not drastic' rule and the power-law rule")
    func otherRules() {
        #expect(VerdictRule.small([0.880, 0.882], [0.875, 0.877], limit: 0.01) == .holds)
        #expect(VerdictRule.small([0.90, 0.91], [0.80, 0.81], limit: 0.01) == .reversed)
        #expect(VerdictRule.small([0.90, 0.80], [0.85, 0.75], limit: 0.01) == .notShown)
        let b: [Double] = [2, 4, 8, 16, 32]
        let (holds, s1) = VerdictRule.slope(x: b, y: b.map { 1 / $0.squareRoot() }, expected: -0.5, tolerance: 0.1)
        #expect(holds == .holds && abs(s1 + 0.5) < 1e-12)
        #expect(VerdictRule.slope(x: b, y: b.map { $0.squareRoot() }, expected: -0.5, tolerance: 0.1).0 == .reversed)
        #expect(VerdictRule.slope(x: b, y: b.map { 1 / $0 }, expected: -0.5, tolerance: 0.1).0 == .notShown)
        // no worse: d − 2s > −margin holds, d + 2s < −margin reversed (pooled s ≈ 0.014 here)
        #expect(VerdictRule.noWorse(claimed: [0.80, 0.82], baseline: [0.80, 0.82], higherIsBetter: true, margin: 0.05) == .holds)
        #expect(VerdictRule.noWorse(claimed: [0.80, 0.82], baseline: [0.80, 0.82], higherIsBetter: true, margin: 0.01) == .notShown)
        #expect(VerdictRule.noWorse(claimed: [0.70, 0.72], baseline: [0.80, 0.82], higherIsBetter: true, margin: 0.05) == .reversed)
        #expect(VerdictRule.noWorse(claimed: [0.70, 0.72], baseline: [0.80, 0.82], higherIsBetter: false, margin: 0.05) == .holds)
        #expect(VerdictRule.all([.holds, .holds]) == .holds && VerdictRule.all([.holds, .notShown]) == .notShown
                && VerdictRule.all([.notShown, .reversed]) == .reversed)
        #expect(Spread([1, 2, 3]).formatted(1) == "2.0 ± 1.0" && Spread([0.5, .nan]).count == 1 && Spread([.nan]).formatted() == "n/a")
        #expect(_fixed(-0.0004, 2) == "0.00" && _fixed(-1.26, 1) == "-1.3" && _fixed(2.5, 0) == "3" && _fixed(0.05, 3) == "0.050")
    }

    @Test("experiment 11 refuses samples that are not square images, and no batch sizes, with a typed error")
    func convolutionalBadInput() throws {
        let directory = makeTemporaryDirectory("lab-cnn")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let lab = try Lab(settings: tinySettings, train: try blobs(count: 32, seed: 1, dimensions: 12), test: try blobs(count: 8, seed: 2, dimensions: 12),
                          directory: directory, dataDescription: "x")
        #expect {
            try lab.run(only: [11])
        } throws: { error in
            guard case let BatchNormKitError.invalidArgument(name, value, _) = error else { return false }
            return name == "features per sample" && value == "12"
        }
        var noBatches = tinySettings
        noBatches.cnnBatchSizes = []
        let empty = try Lab(settings: noBatches, train: try blobs(count: 32, seed: 1), test: try blobs(count: 8, seed: 2),
                            directory: directory, dataDescription: "x")
        #expect(throws: BatchNormKitError.self) { try empty.run(only: [11]) }
    }

    @Test("an unwritable report directory is refused before any work")
    func unwritable() throws {
        #expect(throws: BatchNormKitError.self) {
            try Lab(settings: tinySettings, train: try blobs(count: 8, seed: 1), test: try blobs(count: 8, seed: 2),
                    directory: "/proc/lab-report", dataDescription: "x")
        }
    }
}
