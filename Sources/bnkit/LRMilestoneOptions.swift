import ArgumentParser
import BatchNormKit

/// `--lr-milestones E1,E2,… --lr-gamma G`: the learning rate multiplied by G
/// when each listed epoch starts (1-based), PyTorch's
/// `MultiStepLR(milestones=[E1 − 1, …], gamma=G)` stepped once per epoch.
/// No milestones (the default): a constant learning rate.
struct LRMilestoneOptions: ParsableArguments {
    @Option(name: .customLong("lr-milestones"), parsing: .upToNextOption,
            help: ArgumentHelp("Epochs (1-based) at whose start the learning rate is multiplied by --lr-gamma, e.g. 5 6.", valueName: "EPOCH"))
    var milestones: [Int] = []
    @Option(name: .customLong("lr-gamma"), help: "Factor applied to the learning rate at each milestone.")
    var gamma: Float = 0.1

    func validate() throws {
        guard milestones.allSatisfy({ $0 >= 2 }) else { throw ValidationError("--lr-milestones must be epochs ≥ 2, got \(milestones)") }
        guard gamma.isFinite, gamma > 0 else { throw ValidationError("--lr-gamma must be a finite number > 0") }
    }

    /// Sets the learning rate of the epoch after `finishedEpoch` (call after every epoch).
    func apply(after finishedEpoch: Int, to optimizer: any Optimizer, base: Float) {
        let passed = milestones.filter { $0 <= finishedEpoch + 1 }.count
        var rate = base
        for _ in 0..<passed { rate *= gamma }
        optimizer.learningRate = rate
    }

    /// E.g. `, lr ×0.1 at epochs 5, 6`, or "" for none.
    var summary: String {
        milestones.isEmpty ? "" : ", lr ×\(gamma) at epoch\(milestones.count == 1 ? "" : "s") " + milestones.map(String.init).joined(separator: ", ")
    }
}
