import Foundation

// Experiment 11: experiment 5's small-batch question asked of a CNN —
// BatchNorm2d against GroupNorm and InstanceNorm at batch 2 … 128, the
// GroupNorm paper's figure (Wu & He, 2018, arXiv:1803.08494, Fig. 1) at this
// lab's scale: a small CNN on a subsample, the same samples seen at every batch.

extension Lab {
    /// The CNN variants of experiment 11, by their CSV `norm` spelling.
    static let convolutionalNorms = ["batchnorm2d", "groupnorm", "instancenorm"]

    /// The learning rate at batch 128; at batch B it is this × B/128 (linear
    /// scaling, as experiment 5 and the GroupNorm paper do).
    static let convolutionalBaseLearningRate: Float = 0.1

    /// How far BatchNorm2d may trail GroupNorm at the largest batch and still
    /// count as "no worse" (the paper: BN ahead at batch 32 by 0.5 pp on ImageNet).
    static let convolutionalMargin = 0.01

    func convolutionalArchitecture(_ norm: String, imageSize: Int) -> CNNArchitecture {
        let normalization: CNNNormalization = switch norm {
        case "groupnorm": .groupNorm(groups: settings.cnnGroups)
        case "instancenorm": .instanceNorm
        default: .batchNorm
        }
        return CNNArchitecture(imageSize: imageSize, inChannels: 1, channels: settings.cnnChannels,
                               hiddenSize: settings.cnnHiddenSize, classes: classCount, normalization: normalization)
    }

    // MARK: 11. Small batches in a CNN

    func convolutionalSmallBatches() throws -> ExperimentReport {
        let s = settings
        let side = Int(Double(train.featureCount).squareRoot().rounded())
        guard side * side == train.featureCount else {
            throw BatchNormKitError.invalidArgument(name: "features per sample", value: "\(train.featureCount)",
                                                    requirement: "must be side² (square one-channel images) for the CNN of experiment 11")
        }
        let batchSizes = s.cnnBatchSizes.sorted()
        guard !batchSizes.isEmpty, s.seeds >= 1 else {
            throw BatchNormKitError.invalidArgument(name: "cnnBatchSizes / seeds", value: "\(batchSizes) / \(s.seeds)",
                                                    requirement: "experiment 11 needs at least one batch size and one seed")
        }
        let data = try train.prefix(s.cnnSamples), testData = try test.prefix(s.cnnTestSamples)
        var rows: [[String]] = []
        var accuracy: [String: [Int: [Double]]] = [:], gap: [String: [Int: [Double]]] = [:]
        for norm in Self.convolutionalNorms {
            let architecture = convolutionalArchitecture(norm, imageSize: side)
            for b in batchSizes {
                let lr = Self.convolutionalBaseLearningRate * Float(b) / 128
                for seed in 0..<UInt64(s.seeds) {
                    let network = try CNN(architecture, seed: seed)
                    let run = try trainModel(network, configuration: recipe(epochs: s.cnnEpochs, learningRate: lr, batchSize: b, seed: seed),
                                             data: data, test: testData, evaluateEveryEpoch: false)
                    let evalMode = run.divergedAt == nil ? run.records.last?.testAccuracy ?? .nan : .nan
                    let trainMode = run.divergedAt == nil ? try trainModeAccuracy(network, batchSize: b, on: testData) : .nan
                    rows.append([norm, "\(b)", "\(lr)", "\(seed)", cell(evalMode), cell(trainMode), cell(trainMode - evalMode),
                                 run.divergedAt.map { "diverged at epoch \($0)" } ?? ""])
                    accuracy[norm, default: [:]][b, default: []].append(evalMode)
                    gap[norm, default: [:]][b, default: []].append(abs(trainMode - evalMode))
                }
            }
        }
        try writeCSV("11-cnn-small-batches", header: ["norm", "batch_size", "learning_rate", "seed", "test_accuracy",
                                                      "train_mode_accuracy", "train_eval_gap", "diverged"], rows: rows)

        let smallest = batchSizes.first!, largest = batchSizes.last!
        func at(_ norm: String, _ b: Int) -> [Double] { accuracy[norm]![b]! }
        func pct(_ v: [Double]) -> String { Spread(v).formatted(2, scale: 100) + "%" }
        let seeds = seedText(s.seeds), margin = "\(_fixed(Self.convolutionalMargin * 100, 0)) pp"
        let groupAhead = VerdictRule.compare(claimed: at("groupnorm", smallest), baseline: at("batchnorm2d", smallest), higherIsBetter: true)
        let batchNoWorse = VerdictRule.noWorse(claimed: at("batchnorm2d", largest), baseline: at("groupnorm", largest),
                                               higherIsBetter: true, margin: Self.convolutionalMargin)
        let groupRule = VerdictRule.compareRule("eval-mode test accuracy at batch \(smallest), GroupNorm against BatchNorm2d", seeds: seeds)
        let batchRule = VerdictRule.noWorseRule("eval-mode test accuracy at batch \(largest), BatchNorm2d against GroupNorm",
                                                margin: margin, seeds: seeds)
        let gapSmall = gap["batchnorm2d"]![smallest]!, gapLarge = gap["batchnorm2d"]![largest]!
        let batchFree = Self.convolutionalNorms.dropFirst().flatMap { norm in gap[norm]!.values.flatMap { $0 } }.filter(\.isFinite)
        let table = batchSizes.map { b in
            "\(b): " + Self.convolutionalNorms.map { _fixed(Spread(at($0, b)).mean * 100, 1) }.joined(separator: " / ")
        }.joined(separator: "; ")
        let diverged = rows.filter { !$0[7].isEmpty }.count
        return ExperimentReport(
            number: 11, slug: "11-cnn-small-batches", title: Self.titles[10],
            claim: "Statistics are batch dependent - if the batch size is too small, those might be unreliable (see challenges for other normalization schemes to mitigate this problem) — and: Remember to check those challenges AFTER you know what the convolution is and how it plays with BatchNorm! What is Instance Normalization? What is Group Normalization?",
            question: "In a CNN trained on the same \(data.count) samples with batches of \(batchSizes.map(String.init).joined(separator: ", ")), does GroupNorm beat BatchNorm2d at batch \(smallest) while BatchNorm2d is no worse at batch \(largest) (the GroupNorm paper's figure), how does InstanceNorm compare, and do BatchNorm2d's train-mode and eval-mode predictions drift apart at small batches?",
            verdicts: [
                ("GroupNorm ahead at batch \(smallest), BatchNorm2d no worse at batch \(largest)", Verdict(
                    outcome: VerdictRule.all([groupAhead, batchNoWorse]),
                    figure: "batch \(smallest): GroupNorm \(pct(at("groupnorm", smallest))) vs BatchNorm2d \(pct(at("batchnorm2d", smallest))); batch \(largest): BatchNorm2d \(pct(at("batchnorm2d", largest))) vs GroupNorm \(pct(at("groupnorm", largest)))",
                    rule: "holds when both parts below hold (GroupNorm ahead at batch \(smallest) by the two-sample rule; BatchNorm2d no worse at batch \(largest) by the \(margin) non-inferiority rule); reversed when either part is reversed; otherwise not shown")),
                ("GroupNorm beats BatchNorm2d at batch \(smallest)", Verdict(
                    outcome: groupAhead,
                    figure: "batch \(smallest): GroupNorm \(pct(at("groupnorm", smallest))) vs BatchNorm2d \(pct(at("batchnorm2d", smallest)))",
                    rule: groupRule)),
                ("BatchNorm2d no worse than GroupNorm at batch \(largest)", Verdict(
                    outcome: batchNoWorse,
                    figure: "batch \(largest): BatchNorm2d \(pct(at("batchnorm2d", largest))) vs GroupNorm \(pct(at("groupnorm", largest)))",
                    rule: batchRule)),
                ("GroupNorm beats InstanceNorm at batch \(largest)", Verdict(
                    outcome: VerdictRule.compare(claimed: at("groupnorm", largest), baseline: at("instancenorm", largest), higherIsBetter: true),
                    figure: "batch \(largest): GroupNorm \(pct(at("groupnorm", largest))) vs InstanceNorm \(pct(at("instancenorm", largest))); batch \(smallest): \(pct(at("groupnorm", smallest))) vs \(pct(at("instancenorm", smallest)))",
                    rule: VerdictRule.compareRule("eval-mode test accuracy at batch \(largest), GroupNorm against InstanceNorm", seeds: seeds))),
                trainEvalGapVerdict("BatchNorm2d", small: gapSmall, large: gapLarge, smallest: smallest, largest: largest),
            ],
            settings: "CNN \(side)×\(side)×1 → \(s.cnnChannels.map { "conv \($0)" }.joined(separator: " → ")) (3×3, max-pool 2) → \(s.cnnHiddenSize) → \(classCount) with BatchNorm2d after each convolution (and BatchNorm1d after the hidden Linear), vs the same CNN with GroupNorm(\(s.cnnGroups) groups) or InstanceNorm2d (affine) after each convolution and no normalization in the classifier; a subsample of \(data.count) training samples (the same at every batch size) for \(s.cnnEpochs) epoch(s), evaluated on the first \(testData.count) test samples of \(dataDescription); lr \(_fixed(Double(Self.convolutionalBaseLearningRate), 2)) × B/128 (linear scaling), SGD momentum 0.9, no weight decay; \(seeds) per norm and batch size",
            notes: ["mean eval-mode test accuracy (%) by batch size, BatchNorm2d / GroupNorm / InstanceNorm — \(table)",
                    "GroupNorm and InstanceNorm use no batch statistics: their largest |train-mode − eval-mode| accuracy difference over every run is \(_fixed((batchFree.max() ?? .nan) * 100, 2)) pp",
                    diverged == 0 ? "no run diverged" : "\(diverged) of \(rows.count) runs diverged (left out of the means)"])
    }
}
