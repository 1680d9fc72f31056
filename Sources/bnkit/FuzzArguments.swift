// `make fuzz` target `cli`: libFuzzer over bnkit's own argument surface, in
// process. Built only with -DFUZZING (then BNKit has no @main and libFuzzer
// supplies main); the normal build compiles this file to nothing.
//
// An input is NUL- or newline-separated arguments; the first picks `train`
// or `eval` (any other first word is parsed as given, so the parser's errors
// are fuzzed too). Every input runs in a scratch directory holding a tiny
// dataset (`data/`, 4×4 images) and a checkpoint (`c.safetensors`), both
// rewritten before each run, so a run that overwrites them cannot poison the
// next. Paths are confined to that directory: an argument with `/` or `..`
// is dropped. Runs that would only be slow, not wrong, are skipped after
// parsing: more than 2 epochs, 2 ranks or 2 threads. A crash, a trap or a
// sanitizer report is a finding; an error exit is the expected answer.

#if FUZZING
import ArgumentParser
import BatchNormKit
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The scratch directory, made once per process.
private let fuzzDirectory: String = {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("bnkit-cli-fuzz-\(getpid())").path
    try? FileManager.default.createDirectory(atPath: path + "/data", withIntermediateDirectories: true)
    guard chdir(path) == 0 else { fatalError("cli fuzz: cannot enter \(path)") }
    return path
}()

/// An unsigned-byte IDX file: magic, big-endian sizes, payload.
private func idx(_ dimensions: [Int], _ payload: [UInt8]) -> Data {
    var bytes: [UInt8] = [0, 0, 8, UInt8(dimensions.count)]
    for size in dimensions { bytes += [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: size >> $0) } }
    return Data(bytes + payload)
}

/// Rewrites the tiny dataset (12 train, 6 test samples of 4×4) and checkpoint.
private func resetScratch() {
    for (prefix, count) in [("train", 12), ("t10k", 6)] {
        let labels = (0..<count).map { UInt8($0 % 10) }
        let pixels = (0..<(count * 16)).map { UInt8(($0 * 37) % 256) }
        _ = FileManager.default.createFile(atPath: "data/\(prefix)-images-idx3-ubyte", contents: idx([count, 4, 4], pixels))
        _ = FileManager.default.createFile(atPath: "data/\(prefix)-labels-idx1-ubyte", contents: idx([count], labels))
    }
    try? SeedNetwork(inputSize: 16, hiddenSizes: [8, 4]).saveCheckpoint(to: "c.safetensors", metadata: ["input_mean": "0.5", "input_std": "0.25"])
}

/// The arguments an input encodes, or nil when it names paths outside the scratch directory.
private func arguments(_ bytes: UnsafeBufferPointer<UInt8>) -> [String]? {
    let words = bytes.split(whereSeparator: { $0 == 0 || $0 == 10 }).prefix(16).map { String(decoding: $0, as: UTF8.self) }
    guard !words.contains(where: { $0.contains("/") || $0.contains("..") }) else { return nil }
    // the tiny data, whatever the input said (the last --data wins)
    return words + ["--data", "data"]
}

/// Whether a parsed command is cheap enough to run per input.
private func isQuick(_ command: ParsableCommand) -> Bool {
    if let train = command as? TrainCommand {
        return train.recipe.options.epochs <= 2 && train.ranks <= 2 && train.threads.threads <= 2
    }
    if let eval = command as? EvalCommand { return eval.threads.threads <= 2 }
    return false
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzArguments(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    _ = fuzzDirectory
    guard let words = arguments(UnsafeBufferPointer(start: data, count: size)), let first = words.first,
          ["train", "eval"].contains(first) else { return 0 }
    resetScratch()
    do {
        var command = try BNKit.parseAsRoot(words)
        guard isQuick(command) else { return 0 }
        try command.run()
    } catch {
        // ExitCode, ValidationError, CleanExit, parse errors: the answers bad arguments deserve
    }
    return 0
}
#endif
