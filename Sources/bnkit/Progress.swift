import BatchNormKit
import Foundation
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Progress on the terminal

/// Per-epoch progress: a redrawn bar when stdout is a terminal, otherwise
/// (pipes, logs, CI) only the plain summary line of each epoch.
final class ProgressReporter {
    /// Whether stdout is a terminal.
    let interactive = isatty(STDOUT_FILENO) != 0
    let totalEpochs: Int
    /// Printed before every line, e.g. "batchnorm lr 1.0  ".
    var prefix = ""
    private var lastDraw = -Double.infinity
    // For the whole run's ETA: when this process's first epoch began, and
    // the samples of the epochs finished since.
    private var runStart: ContinuousClock.Instant?
    private var currentEpoch = 0, samplesBeforeEpoch = 0, lastEpochSamples = 0

    private func startEpoch(_ p: BatchProgress) {
        if runStart == nil {
            // the first callback comes after one step: count the run from then
            runStart = ContinuousClock.now - .seconds(p.elapsedSeconds)
        } else {
            samplesBeforeEpoch += lastEpochSamples
        }
        currentEpoch = p.epoch
        lastEpochSamples = p.sampleCount
    }

    init(totalEpochs: Int) { self.totalEpochs = totalEpochs }

    /// Redraws the bar at most 20 times a second (the callback runs inside
    /// the timed loop, so it must stay cheap) and always at the last step.
    func batchDone(_ p: BatchProgress) {
        guard interactive else { return }
        let last = p.batch == p.batchCount
        guard last || p.elapsedSeconds - lastDraw >= 0.05 else { return }
        lastDraw = p.elapsedSeconds
        if runStart == nil || p.epoch != currentEpoch { startEpoch(p) }
        let rate = Double(p.samplesDone) / max(p.elapsedSeconds, 1e-9)
        // The run's pace so far (training and evaluation) over the samples it trained on.
        let runSeconds = seconds(since: runStart!), runSamples = Double(samplesBeforeEpoch + p.samplesDone)
        let samplesLeft = Double((totalEpochs - p.epoch) * p.sampleCount + p.sampleCount - p.samplesDone)
        let line = ProgressLine(
            prefix: prefix, epochLabel: epochLabel(p.epoch), batch: p.batch, batchCount: p.batchCount,
            loss: p.runningLoss, accuracy: p.runningAccuracy, samplesPerSecond: rate,
            epochSecondsLeft: Double(p.sampleCount - p.samplesDone) / max(rate, 1e-9),
            runSecondsLeft: runSamples > 0 ? samplesLeft * runSeconds / runSamples : .nan
        ).render(width: terminalWidth())
        fputs("\r\u{1B}[2K" + line, stdout)
        fflush(stdout)
    }

    /// Replaces the bar by the epoch's summary line.
    func epochDone(_ m: EpochMetrics) {
        if interactive { fputs("\r\u{1B}[2K", stdout) }
        lastDraw = -Double.infinity
        let summary = "\(prefix)\(epochLabel(m.epoch))  train loss \(decimal(m.trainLoss)) acc \(percent(m.trainAccuracy))"
            + "  test loss \(decimal(m.testLoss)) acc \(percent(m.testAccuracy))"
        let timing = "  \(String(format: "%.2f", m.seconds)) s  \(Int(m.samplesPerSecond.isFinite ? m.samplesPerSecond : 0)) samples/s"
        // On a narrow terminal the timing goes rather than wrapping the line.
        print(summary + (interactive && summary.count + timing.count >= terminalWidth() ? "" : timing))
        fflush(stdout)
    }

    private func epochLabel(_ epoch: Int) -> String {
        let digits = String(totalEpochs).count
        let number = String(epoch)
        return "epoch " + String(repeating: " ", count: max(0, digits - number.count)) + number + "/\(totalEpochs)"
    }
}

// MARK: - Metrics file

/// `--metrics FILE`: one record per epoch, CSV (default) or JSON lines
/// (`.jsonl`, `.ndjson`, `.json`). Each record is flushed as it is written,
/// so an interrupted run keeps the epochs it finished; every write and
/// flush is checked (`--metrics /dev/full` fails at the header line, before
/// training).
final class MetricsFile {
    private let handle: UnsafeMutablePointer<FILE>
    private let path: String
    private let json: Bool
    private static let columns = ["epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy",
                                  "seconds", "samples_per_second", "evaluation_seconds"]

    init(path: String) throws {
        guard let handle = fopen(path, "w") else {
            throw BatchNormKitError.fileUnreadable(path: path, reason: "cannot create the metrics file: \(String(cString: strerror(errno)))")
        }
        self.handle = handle
        self.path = path
        json = ["jsonl", "ndjson", "json"].contains((path as NSString).pathExtension.lowercased())
        if !json { try emit(Self.columns.joined(separator: ",")) }
    }

    deinit { fclose(handle) }

    func append(_ m: EpochMetrics) throws {
        let values: [Double] = [Double(m.epoch), m.trainLoss, m.trainAccuracy, m.testLoss, m.testAccuracy,
                                m.seconds, m.samplesPerSecond, m.evaluationSeconds]
        if json {
            // JSON has no NaN or infinity: a diverged run records null.
            let fields = zip(Self.columns, values).map { name, value in
                "\"\(name)\":" + (name == "epoch" ? "\(m.epoch)" : value.isFinite ? "\(value)" : "null")
            }
            try emit("{" + fields.joined(separator: ",") + "}")
        } else {
            try emit(values.enumerated().map { $0.offset == 0 ? "\(m.epoch)" : "\($0.element)" }.joined(separator: ","))
        }
    }

    private func emit(_ line: String) throws {
        guard fputs(line + "\n", handle) >= 0, fflush(handle) == 0 else {
            throw BatchNormKitError.fileUnreadable(path: path, reason: "cannot write the metrics file: \(String(cString: strerror(errno)))")
        }
    }
}
