import ArgumentParser
import BatchNormKit
import Foundation

// MARK: - Options shared by the subcommands

/// Where the data comes from.
struct DataOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Directory with the four MNIST-layout IDX files (.gz or raw).", valueName: "DIR"))
    var data: String = MNISTDataset.defaultDirectory

    /// Loads both splits, timing the read for the report.
    func load() throws -> (dataset: MNISTDataset, seconds: Double) {
        let start = ContinuousClock.now
        let dataset = try MNISTDataset(directory: data)
        return (dataset, seconds(since: start))
    }
}

/// Whether training inputs are standardized (train-set mean and std).
enum InputNormChoice: String, ExpressibleByArgument, CaseIterable {
    case standardize, none
}

/// Input preprocessing for the commands that train.
struct InputOptions: ParsableArguments {
    @Option(help: "Input preprocessing: standardize with the training set's mean and std (as transforms.Normalize), or none.")
    var inputNorm: InputNormChoice = .standardize

    /// Train and test samples after the chosen preprocessing, and the map used (nil for none).
    func prepare(_ dataset: MNISTDataset) throws -> (train: LabeledSamples, test: LabeledSamples, map: InputStandardization?) {
        let train = LabeledSamples(dataset.train), test = LabeledSamples(dataset.test)
        guard inputNorm == .standardize else { return (train, test, nil) }
        let map = try InputStandardization(fittedTo: train)
        return (try map.apply(to: train), try map.apply(to: test), map)
    }
}

/// How many threads the matrix products and kernels use, and what runs the products.
struct ThreadOptions: ParsableArguments {
    @Option(help: "Threads for the matrix products (OpenBLAS's or MatrixKernel's) and the normalization kernels.")
    var threads: Int = 1

    @Option(help: "openblas or simd16: what runs the matrix products (default: the machine rule — simd16 in an AVX-512 build where OpenBLAS runs an 8-lane kernel, else openblas).")
    var gemm: MatrixBackend?

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1, got \(threads)") }
    }

    func apply() throws {
        try setThreadCount(threads)
        if let gemm { MatrixMultiplication.backend = gemm }
    }
}

extension MatrixBackend: ExpressibleByArgument {}

/// What every training command shares: epochs, batch size, momentum, seed
/// (the seed lesson's 10 epochs, batch 128, momentum 0.9, seed 0).
struct RunOptions: ParsableArguments {
    @Option(help: "Passes over the training set.")
    var epochs: Int = 10
    @Option(help: "Samples per SGD step (≥ 2: BatchNorm needs two).")
    var batchSize: Int = 128
    @Option(help: "SGD momentum.")
    var momentum: Float = 0.9
    @Option(help: "Seed of the initial weights and of the shuffling.")
    var seed: UInt64 = 0

    func validate() throws {
        guard epochs >= 1 else { throw ValidationError("--epochs must be at least 1, got \(epochs)") }
        guard batchSize >= 2 else { throw ValidationError("--batch-size must be at least 2 (BatchNorm needs two samples per step), got \(batchSize)") }
        guard momentum.isFinite, momentum >= 0 else { throw ValidationError("--momentum must be finite and ≥ 0") }
    }

    /// These options with a learning rate and weight decay.
    func configuration(learningRate: Float, weightDecay: Float = 0) -> TrainingConfiguration {
        TrainingConfiguration(epochs: epochs, batchSize: batchSize, learningRate: learningRate,
                              momentum: momentum, weightDecay: weightDecay, seed: seed)
    }
}

/// The optimization recipe of `train`: the shared run options plus lr 0.1
/// and no weight decay by default.
struct RecipeOptions: ParsableArguments {
    @OptionGroup var options: RunOptions
    @Option(name: .customLong("lr"), help: "SGD learning rate.")
    var learningRate: Float = 0.1
    @Option(help: "L2 penalty added to the gradients (PyTorch's weight_decay).")
    var weightDecay: Float = 0

    var seed: UInt64 { options.seed }

    func validate() throws {
        guard learningRate.isFinite, learningRate > 0 else { throw ValidationError("--lr must be a finite number > 0") }
        guard weightDecay.isFinite, weightDecay >= 0 else { throw ValidationError("--weight-decay must be finite and ≥ 0") }
    }

    func configuration() -> TrainingConfiguration {
        options.configuration(learningRate: learningRate, weightDecay: weightDecay)
    }
}

/// `--norm batchnorm|none`.
enum NormChoice: String, ExpressibleByArgument, CaseIterable {
    case batchnorm, none
}

/// `--placement before|after`.
enum PlacementChoice: String, ExpressibleByArgument, CaseIterable {
    case before, after
    var placement: NormPlacement { self == .before ? .before : .after }
}

// MARK: - Output helpers

/// Writes to standard error (diagnostics never mix with results on stdout).
func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// Runs a subcommand's body; a library error becomes one line on stderr and
/// exit status 1 instead of a trace.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
        try checkStandardOutput()
    } catch let error as BatchNormKitError {
        printError("bnkit: error: \(error)")
        throw ExitCode.failure
    } catch let error as ExitCode {
        throw error
    } catch let error as ValidationError {
        throw error
    } catch {
        printError("bnkit: error: \(error)")
        throw ExitCode.failure
    }
}

/// Seconds elapsed since `start`.
func seconds(since start: ContinuousClock.Instant) -> Double {
    let parts = (ContinuousClock.now - start).components
    return Double(parts.seconds) + Double(parts.attoseconds) * 1e-18
}

/// `88.91%`; `nan%` stays visible.
func percent(_ fraction: Double) -> String { String(format: "%.2f%%", fraction * 100) }

/// A loss with 4 decimals, or `nan`/`inf`.
func decimal(_ value: Double, _ digits: Int = 4) -> String {
    value.isFinite ? String(format: "%.\(digits)f", value) : "\(value)"
}

/// Display names for K classes (Fashion-MNIST's for K = 10).
func classNames(_ count: Int) -> [String] {
    count == MNISTDataset.classCount ? MNISTDataset.classNames : (0..<count).map { "class \($0)" }
}

/// A checkpoint's architecture and where it came from, e.g.
/// `784 → 256 → 64 → 10, BatchNorm before ReLU (inferred from tensor names and shapes)`.
func describeArchitecture(of file: SafeTensorsFile, path: String) -> String {
    describeStored(file) {
        (try NetworkArchitecture(metadata: file.metadata, path: path), { try NetworkArchitecture(inferringFrom: file, path: path) })
    }
}

/// An architecture as read from `file`'s metadata (`stored`) or else inferred
/// from its tensors, with whether it was folded and where it came from;
/// "unknown (why)" when neither works.
func describeStored<A>(_ file: SafeTensorsFile, _ read: () throws -> (stored: A?, infer: () throws -> A)) -> String {
    do {
        let (stored, infer) = try read()
        let architecture = try stored ?? infer()
        let folded = file.metadata["folded"] == "true" ? ", folded from \(file.metadata["folded_from"] ?? "?")" : ""
        return "\(architecture)\(folded) (" + (stored == nil ? "no metadata: inferred from tensor names and shapes" : "from metadata") + ")"
    } catch {
        return "unknown (\(error))"
    }
}
