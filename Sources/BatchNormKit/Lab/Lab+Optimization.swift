// Experiments 1–3: the lesson's "faster training", "larger learning rates" and
// "not so dependent on initialization of neural network weights".

extension Lab {
    // MARK: 1. Faster convergence

    func convergence() throws -> ExperimentReport {
        let s = settings, target = s.targetAccuracy
        var rows: [[String]] = []
        var epochsToTarget: [NormKind: [Double]] = [:], finals: [NormKind: [Double]] = [:]
        for norm in [NormKind.batchnorm, .none] {
            for seed in 0..<UInt64(s.seeds) {
                let run = try trainRun(seedSpec(norm: norm), seed: seed, configuration: recipe(epochs: s.longEpochs, seed: seed))
                for e in run.epochs {
                    rows.append([norm.rawValue, "\(seed)", "\(e.epoch)", cell(e.trainLoss), cell(e.trainAccuracy),
                                 cell(e.testLoss), cell(e.testAccuracy), run.divergenceText])
                }
                // never reached: counted as one epoch beyond the run
                let reached = run.epochs.first { $0.testAccuracy >= target }?.epoch ?? (s.longEpochs + 1)
                epochsToTarget[norm, default: []].append(Double(reached))
                finals[norm, default: []].append(run.finalAccuracy)
            }
        }
        try writeCSV("01-convergence", header: ["norm", "seed", "epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "diverged"], rows: rows)
        let bn = epochsToTarget[.batchnorm]!, none = epochsToTarget[.none]!
        let pct = _fixed(target * 100, 0)
        let speed = Verdict(outcome: VerdictRule.compare(claimed: bn, baseline: none, higherIsBetter: false),
                            figure: "epochs to \(pct)% test accuracy: BatchNorm \(Spread(bn).formatted(1)) vs none \(Spread(none).formatted(1))",
                            rule: VerdictRule.compareRule("epochs to \(pct)% test accuracy (a run that never reaches it counts as \(s.longEpochs + 1))", seeds: seedText(s.seeds)))
        let final = Verdict(outcome: VerdictRule.compare(claimed: finals[.batchnorm]!, baseline: finals[.none]!, higherIsBetter: true),
                            figure: "test accuracy after \(s.longEpochs) epochs: BatchNorm \(Spread(finals[.batchnorm]!).formatted(2, scale: 100))% vs none \(Spread(finals[.none]!).formatted(2, scale: 100))%",
                            rule: VerdictRule.compareRule("final test accuracy", seeds: seedText(s.seeds)))
        return ExperimentReport(
            number: 1, slug: "01-convergence", title: Self.titles[0],
            claim: "Leads to faster training (less epochs)",
            question: "With the same initial weights, data order and learning rate, does the network with BatchNorm reach a fixed test accuracy in fewer epochs?",
            verdicts: [("fewer epochs to \(pct)%", speed), ("higher final accuracy", final)],
            settings: "\(seedSpec()) vs the same without BatchNorm; \(dataText); \(s.longEpochs) epochs, batch 128, SGD lr 0.1 momentum 0.9; \(seedText(s.seeds)), seed = weights and order",
            notes: [])
    }

    // MARK: 2. Larger learning rates

    func learningRates() throws -> ExperimentReport {
        let s = settings
        var rows: [[String]] = []
        var accuracy: [NormKind: [Float: [Double]]] = [:]
        var divergedCount: [NormKind: [Float: Int]] = [:]
        for norm in [NormKind.batchnorm, .none] {
            for lr in s.learningRates {
                for seed in 0..<UInt64(s.seeds) {
                    let run = try trainRun(seedSpec(norm: norm), seed: seed,
                                           configuration: recipe(epochs: s.epochs, learningRate: lr, seed: seed), evaluateEveryEpoch: false)
                    rows.append([norm.rawValue, "\(lr)", "\(seed)", cell(run.finalAccuracy), cell(run.finalTestLoss),
                                 run.divergedAt.map(String.init) ?? "", run.divergenceText])
                    accuracy[norm, default: [:]][lr, default: []].append(run.finalAccuracy)
                    divergedCount[norm, default: [:]][lr, default: 0] += run.divergedAt == nil ? 0 : 1
                }
            }
        }
        try writeCSV("02-learning-rates", header: ["norm", "learning_rate", "seed", "test_accuracy", "test_loss", "diverged_epoch", "diverged"], rows: rows)
        // the largest lr at which every seed trains to ≥ 80 % of the best mean accuracy of the sweep
        let best = accuracy.values.flatMap(\.values).map { Spread($0).mean }.filter(\.isFinite).max() ?? 0
        func usable(_ norm: NormKind) -> Float? {
            s.learningRates.filter { lr in
                let a = accuracy[norm]![lr]!
                return a.allSatisfy { $0.isFinite && $0 >= 0.8 * best }
            }.max()
        }
        let bnMax = usable(.batchnorm), noneMax = usable(.none)
        let outcome: VerdictOutcome = switch (bnMax, noneMax) {
        case let (b?, n?): b > n ? .holds : b < n ? .reversed : .notShown
        case (.some, nil): .holds
        case (nil, .some): .reversed
        case (nil, nil): .notShown
        }
        func text(_ lr: Float?) -> String { lr.map { "\($0)" } ?? "none" }
        let largest = s.learningRates.max()!
        let atLargest = Verdict(
            outcome: VerdictRule.compare(claimed: accuracy[.batchnorm]![largest]!, baseline: accuracy[.none]![largest]!, higherIsBetter: true),
            figure: "lr \(largest): BatchNorm \(Spread(accuracy[.batchnorm]![largest]!).formatted(2, scale: 100))% (\(divergedCount[.batchnorm]![largest]!) diverged) vs none \(Spread(accuracy[.none]![largest]!).formatted(2, scale: 100))% (\(divergedCount[.none]![largest]!) diverged)",
            rule: VerdictRule.compareRule("test accuracy at the largest lr (diverged runs left out; a side whose runs all diverged loses)", seeds: seedText(s.seeds)))
        let notes = [NormKind.batchnorm, .none].map { norm in
            "\(norm.rawValue): diverged runs per lr " + s.learningRates.map { "\($0): \(divergedCount[norm]![$0]!)/\(s.seeds)" }.joined(separator: ", ")
        }
        return ExperimentReport(
            number: 2, slug: "02-learning-rates", title: Self.titles[1],
            claim: "Due to above, we can: Use larger learning rates",
            question: "Over a learning-rate sweep, does BatchNorm keep training (and train well) at learning rates where the plain network diverges or degrades?",
            verdicts: [("larger usable learning rate", Verdict(outcome: outcome,
                        figure: "largest usable lr: BatchNorm \(text(bnMax)) vs none \(text(noneMax))",
                        rule: "usable: every seed finishes without divergence at ≥ 80 % of the best mean accuracy of the sweep (\(_fixed(best * 80, 1))%); holds when BatchNorm's largest usable lr is larger, reversed when smaller, not shown when equal")),
                       ("better at the largest lr", atLargest)],
            settings: "\(seedSpec()) vs without BatchNorm; \(dataText); \(s.epochs) epochs, batch 128, SGD momentum 0.9, lr \(s.learningRates.map { "\($0)" }.joined(separator: ", ")); \(seedText(s.seeds))",
            notes: notes)
    }

    // MARK: 3. Less dependence on initialization

    func initialization() throws -> ExperimentReport {
        let s = settings
        var rows: [[String]] = []
        var accuracy: [NormKind: [Float: [Double]]] = [:]
        for norm in [NormKind.batchnorm, .none] {
            for scale in s.initScales {
                for seed in 0..<UInt64(s.seeds) {
                    let run = try trainRun(seedSpec(norm: norm, initScale: scale), seed: seed,
                                           configuration: recipe(epochs: s.epochs, seed: seed), evaluateEveryEpoch: false)
                    rows.append([norm.rawValue, "\(scale)", "\(seed)", cell(run.finalAccuracy), cell(run.finalTestLoss), run.divergenceText])
                    accuracy[norm, default: [:]][scale, default: []].append(run.finalAccuracy)
                }
            }
        }
        try writeCSV("03-initialization", header: ["norm", "init_scale", "seed", "test_accuracy", "test_loss", "diverged"], rows: rows)
        // per seed: the accuracy range over the scales (a diverged run counts as 0 accuracy here: the worst case)
        func ranges(_ norm: NormKind) -> [Double] {
            (0..<s.seeds).map { seed in
                let values = s.initScales.map { accuracy[norm]![$0]![seed] }.map { $0.isFinite ? $0 : 0 }
                return values.max()! - values.min()!
            }
        }
        let bn = ranges(.batchnorm), none = ranges(.none)
        return ExperimentReport(
            number: 3, slug: "03-initialization", title: Self.titles[2],
            claim: "We are not so dependent on initialization of neural network weights",
            question: "When every initial weight is scaled by ×\(s.initScales.map { "\($0)" }.joined(separator: ", ×")), how much does the final accuracy move, with and without BatchNorm?",
            verdicts: [("smaller accuracy range over init scales", Verdict(
                outcome: VerdictRule.compare(claimed: bn, baseline: none, higherIsBetter: false),
                figure: "accuracy range (max − min over scales): BatchNorm \(Spread(bn).formatted(2, scale: 100)) pp vs none \(Spread(none).formatted(2, scale: 100)) pp",
                rule: VerdictRule.compareRule("per-seed range of final test accuracy over the init scales (a diverged run counts as 0 %)", seeds: seedText(s.seeds))))],
            settings: "\(seedSpec()) vs without BatchNorm, Linear weights × scale (PyTorch default init U(±1/√fan_in) × scale, biases unscaled); \(dataText); \(s.epochs) epochs, batch 128, SGD lr 0.1 momentum 0.9; \(seedText(s.seeds))",
            notes: [])
    }
}
