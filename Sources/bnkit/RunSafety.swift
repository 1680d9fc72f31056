import BatchNormKit
import Foundation
#if canImport(Glibc)
import Glibc
#endif

// Checks every command makes before long work: outputs writable, a batch
// the data can fill. Failing here costs a second, not a training run.

/// Checks every output path given (nil: option not used) before any work.
/// - Throws: `BatchNormKitError.fileUnreadable` naming the first bad path and why.
func checkOutputs(_ outputs: [(path: String?, role: String, kind: OutputKind)]) throws {
    for output in outputs {
        if let path = output.path { try OutputPath.check(path, role: output.role, kind: output.kind) }
    }
}

/// The batch size a run uses on `samples` training samples: `requested`, or
/// all the samples when it asks for more (PyTorch's DataLoader then yields
/// one short batch; here that is said, not silent). With `ranks` replicas
/// every rank needs two samples per step.
/// - Throws: `BatchNormKitError.emptyBatch` when the data cannot give each rank two samples.
func effectiveBatchSize(_ requested: Int, samples: Int, ranks: Int = 1) throws -> Int {
    let (perStep, overflow) = ranks.multipliedReportingOverflow(by: 2)
    guard !overflow, samples >= perStep else {
        throw BatchNormKitError.emptyBatch(
            context: "training on \(samples) samples with \(ranks) rank\(ranks == 1 ? "" : "s") (every step needs 2 samples per rank, so no batch is left)")
    }
    guard requested > samples else { return requested }
    printError("bnkit: note: --batch-size \(requested) is larger than the \(samples) training samples; every step uses all \(samples)")
    return samples
}

/// Throws when standard output could not be written (`bnkit train > /dev/full`):
/// results that never arrived are a failure, not a success.
func checkStandardOutput() throws {
    if fflush(stdout) != 0 || ferror(stdout) != 0 {
        throw BatchNormKitError.fileUnreadable(path: "standard output", reason: "cannot write: \(String(cString: strerror(errno)))")
    }
}
