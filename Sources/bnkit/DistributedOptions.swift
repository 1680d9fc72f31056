import ArgumentParser
import BatchNormKit
import BatchNormKitMPI
#if canImport(Glibc)
import Glibc
#endif

/// `--distributed none|mpi`.
enum DistributedChoice: String, ExpressibleByArgument, CaseIterable {
    case none, mpi
}

/// Data parallelism across processes: `mpirun -np N bnkit train --distributed mpi …`.
struct DistributedOptions: ParsableArguments {
    @Option(help: "Data-parallel across processes: mpi (start under mpirun; rank and size come from MPI), or none.")
    var distributed: DistributedChoice = .none
    @Option(help: ArgumentHelp("With --distributed mpi: seconds a rank waits for the others in one exchange before the job fails.",
                               valueName: "SECONDS"))
    var distributedTimeout: Double = 600

    func validate() throws {
        guard distributedTimeout.isFinite, distributedTimeout > 0 else {
            throw ValidationError("--distributed-timeout must be a finite number of seconds > 0")
        }
        // mpirun -np N without --distributed would run N separate trainings writing the same files
        if distributed == .none, let size = launcherSize, size > 1 {
            throw ValidationError("started as one of \(size) MPI processes: add --distributed mpi (or run without mpirun)")
        }
    }

    /// The job size an MPI launcher announces in the environment (Open MPI, or PMI's), if any.
    private var launcherSize: Int? {
        for name in ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"] {
            if let value = getenv(name), let size = Int(String(cString: value)) { return size }
        }
        return nil
    }

    /// Joins the MPI job when asked: first of all, so that anything failing
    /// later (even reading the data) is reported to rank 0.
    func join() throws -> MPIProcessGroup? {
        guard distributed == .mpi else { return nil }
        do {
            let group = try MPIProcessGroup.world()
            group.timeoutSeconds = distributedTimeout
            return group
        } catch {
            printError("bnkit: error: cannot join the MPI job: \(error)")
            throw ExitCode.failure
        }
    }
}

/// Runs a subcommand's body as one rank of `job` (no job: ``reportingErrors(_:)``).
/// Ranks other than 0 print nothing (their stdout goes to /dev/null). An
/// error on any rank ends the whole job: rank 0 prints it and aborts; another
/// rank reports it to rank 0, which prints it naming the rank and aborts.
func reportingErrors(as job: MPIProcessGroup?, _ body: () throws -> Void) throws {
    guard let job else { return try reportingErrors(body) }
    if job.rank != 0 { _ = freopen("/dev/null", "w", stdout) }
    do {
        try body()
    } catch {
        if job.rank == 0 { printError("bnkit: error: \(error) (rank 0 of \(job.size) ends the job)") }
        job.abort(reason: "\(error)")
    }
}

extension TrainCommand {
    /// What every rank of a job must agree on before training: the flags
    /// that change the arithmetic, the model, and the data (sizes and a
    /// fingerprint of the bits). Output paths, threads and the data
    /// directory may differ between machines.
    func startupSettings(model: Layer, train: LabeledSamples, test: LabeledSamples,
                         configuration: TrainingConfiguration) -> [(name: String, value: String)] {
        [
            ("--epochs", "\(configuration.epochs)"), ("--batch-size", "\(configuration.batchSize)"),
            ("--lr", "\(configuration.learningRate)"), ("--momentum", "\(configuration.momentum)"),
            ("--weight-decay", "\(configuration.weightDecay)"), ("--seed", "\(configuration.seed)"),
            ("--norm", norm.rawValue), ("--placement", placement.rawValue), ("--input-norm", input.inputNorm.rawValue),
            ("model", describeModel(model)),
            ("parameters", "\(model.parameters().reduce(0) { $0 + $1.value.count })"),
            ("training samples", "\(train.count) × \(train.featureCount)"), ("test samples", "\(test.count) × \(test.featureCount)"),
            ("training data", String(train._fingerprint, radix: 16)), ("test data", String(test._fingerprint, radix: 16)),
        ]
    }
}
