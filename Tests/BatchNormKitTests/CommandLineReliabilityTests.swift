import Foundation
import Testing
@testable import BatchNormKit

// Issue 8's probes against the real `bnkit` binary (built next to the test
// bundle by `swift build --build-tests`) on a tiny generated dataset: exit
// status, stderr and the files left behind. Every run has a deadline, so a
// hang fails the test instead of holding the suite.

/// One finished `bnkit` run.
struct CommandRun {
    let status: Int32
    let stdout: String
    let stderr: String
    /// Killed at the deadline (a hang).
    let timedOut: Bool
    /// Ended by a signal (a trap) rather than exit().
    let signaled: Bool
}

/// Runs the `bnkit` next to this test bundle with `arguments`, killing it
/// after `deadline` seconds. `stdoutPath` redirects standard output to a file.
func runBNKit(_ arguments: [String], deadline: Double = 60, stdoutPath: String? = nil) throws -> CommandRun {
    // BNKIT_BINARY runs the probes against another build (e.g. main's, to see them fail there).
    let executable = ProcessInfo.processInfo.environment["BNKIT_BINARY"].map { URL(fileURLWithPath: $0) }
        ?? URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("bnkit")
    guard FileManager.default.isExecutableFile(atPath: executable.path) else {
        throw BatchNormKitError.fileUnreadable(path: executable.path, reason: "no bnkit binary next to the tests: run `swift build --build-tests`")
    }
    // posix_spawn, not Foundation's Process (whose run() leaks a weak
    // reference, which `make test-asan` would report). Output goes to files,
    // read after the exit: no pipe can fill up or stay open.
    let capture = FileManager.default.temporaryDirectory.appendingPathComponent("bnkit-run-\(UUID().uuidString)").path
    defer { unlink(capture + ".out"); unlink(capture + ".err") }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, stdoutPath ?? capture + ".out", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_addopen(&actions, 2, capture + ".err", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    let argv = ([executable.path] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, executable.path, &actions, nil, argv, environ)
    guard spawned == 0 else {
        throw BatchNormKitError.fileUnreadable(path: executable.path, reason: "cannot run: \(String(cString: strerror(spawned)))")
    }
    let end = Date().addingTimeInterval(deadline)
    var timedOut = false, status: Int32 = 0
    while waitpid(pid, &status, WNOHANG) == 0 {
        if Date() > end { timedOut = true; kill(pid, SIGKILL); waitpid(pid, &status, 0); break }
        usleep(10_000)
    }
    func contents(_ path: String) -> Data {
        guard let file = fopen(path, "r") else { return Data() }
        defer { fclose(file) }
        var data = Data(), chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = fread(&chunk, 1, chunk.count, file)
            if n == 0 { break }
            data.append(contentsOf: chunk[..<n])
        }
        return data
    }
    let outData = contents(capture + ".out"), errData = contents(capture + ".err")
    let signaled = (status & 0x7f) != 0, exitStatus = signaled ? status & 0x7f : (status >> 8) & 0xff
    return CommandRun(status: exitStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self), timedOut: timedOut, signaled: signaled)
}

/// A directory with an MNIST-layout dataset of `train`/`test` 4×4 images of
/// 10 classes (class c lights pixel c), raw IDX files.
func writeTinyDataset(_ directory: String, train: Int = 40, test: Int = 20) throws {
    var generator = SplitMix64(seed: 7)
    for (prefix, count) in [("train", train), ("t10k", test)] {
        var pixels: [UInt8] = [], labels: [UInt8] = []
        for i in 0..<count {
            labels.append(UInt8(i % 10))
            for p in 0..<16 { pixels.append(p == i % 10 ? 220 : UInt8(truncatingIfNeeded: generator.next(upperBound: UInt64(60)))) }
        }
        try IDXFile.write(dimensions: [count, 4, 4], bytes: pixels, to: "\(directory)/\(prefix)-images-idx3-ubyte", compressed: false)
        try IDXFile.write(dimensions: [count], bytes: labels, to: "\(directory)/\(prefix)-labels-idx1-ubyte", compressed: false)
    }
}

@Suite("Reliability: bnkit command line", .serialized)
struct CommandLineReliabilityTests {
    let directory: String
    var data: String { directory + "/data" }
    var quick: [String] { ["--data", data, "--epochs", "1", "--batch-size", "8"] }

    init() throws {
        directory = makeTemporaryDirectory("CommandLineReliability")
        try FileManager.default.createDirectory(atPath: directory + "/data", withIntermediateDirectories: true)
        try writeTinyDataset(directory + "/data")
    }

    private func expectFailure(_ run: CommandRun, mentions: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(!run.timedOut, "hung", sourceLocation: sourceLocation)
        #expect(!run.signaled, "trapped: \(run.stderr)", sourceLocation: sourceLocation)
        #expect(run.status != 0, "exit status 0; stderr: \(run.stderr)", sourceLocation: sourceLocation)
        for text in mentions {
            #expect(run.stderr.contains(text), "stderr lacks \"\(text)\": \(run.stderr)", sourceLocation: sourceLocation)
        }
    }

    @Test("--ranks 2 with a metrics file in a missing directory fails at once instead of deadlocking")
    func ranksMissingMetricsDirectory() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let run = try runBNKit(["train"] + quick + ["--ranks", "2", "--metrics", directory + "/missing/m.csv"], deadline: 30)
        expectFailure(run, mentions: ["missing/m.csv", "metrics file", "No such file or directory"])
    }

    @Test("a bad --checkpoint or hessian --output fails before the data is even read, with the reason")
    func outputsBeforeWork() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // --data names no dataset: a preflight that ran after loading would report that instead
        let train = try runBNKit(["train", "--data", directory + "/none", "--checkpoint", directory + "/missing/c.safetensors"])
        expectFailure(train, mentions: ["checkpoint", "No such file or directory"])
        #expect(!train.stderr.contains("--data"))
        let hessian = try runBNKit(["hessian", "--data", directory + "/none", "--output", directory + "/data/train-images-idx3-ubyte/h.csv"])
        expectFailure(hessian, mentions: ["CSV", "Not a directory"])
        let export = try runBNKit(["export", "--checkpoint", "/nonexistent", "--fold-batchnorm", directory + "/missing/f.safetensors"])
        expectFailure(export, mentions: ["folded model", "No such file or directory"])
    }

    @Test("--metrics /dev/full and a full standard output fail non-zero")
    func writeErrors() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        expectFailure(try runBNKit(["train"] + quick + ["--metrics", "/dev/full"]), mentions: ["No space left on device"])
        expectFailure(try runBNKit(["train"] + quick, stdoutPath: "/dev/full"), mentions: ["standard output"])
    }

    @Test("--batch-size beyond the data (up to Int.max) is clamped with a note, not a trap or a huge allocation")
    func hugeBatch() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for size in ["2000000", "9223372036854775807"] {
            let run = try runBNKit(["train", "--data", data, "--epochs", "1", "--batch-size", size])
            #expect(run.status == 0 && !run.signaled, "\(size): \(run.stderr)")
            #expect(run.stderr.contains("larger than the 40 training samples"), "\(run.stderr)")
        }
        let ranks = try runBNKit(["train", "--data", data, "--epochs", "1", "--batch-size", "8", "--ranks", "9223372036854775807"])
        #expect(ranks.status != 0 && !ranks.signaled, "\(ranks.stderr)")
        // a rank is a thread with a whole replica: 30000 of them is the input deciding the resources
        let manyRanks = try runBNKit(["train", "--data", data, "--epochs", "1", "--batch-size", "100000", "--ranks", "30000"])
        #expect(manyRanks.status != 0 && !manyRanks.signaled && manyRanks.stderr.contains("at most 256"), "\(manyRanks.stderr)")
        // hessian: --top 10^12 made a 10^12-column CSV header before any check
        let top = try runBNKit(["hessian", "--data", data, "--epochs", "1", "--top", "1000000000000", "--lanczos-steps", "1000000000000"])
        #expect(top.status != 0 && !top.signaled && top.stderr.contains("at most 1000"), "\(top.stderr)")
    }

    @Test("--ranks 2 on data too small for two samples per rank is refused, not trained on 0 samples")
    func ranksEmptyEpoch() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try writeTinyDataset(data, train: 3, test: 4)
        let run = try runBNKit(["train", "--data", data, "--epochs", "1", "--batch-size", "4", "--ranks", "2"])
        expectFailure(run, mentions: ["2 samples per rank"])
        #expect(!run.stdout.contains("nan"))
    }

    @Test("a diverging run exits non-zero and writes no checkpoint; compare-lr says where it diverged")
    func divergence() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let checkpoint = directory + "/c.safetensors"
        let run = try runBNKit(["train"] + quick + ["--lr", "1e30", "--norm", "none", "--checkpoint", checkpoint])
        expectFailure(run, mentions: ["diverged at epoch 1, step", "no checkpoint written"])
        #expect(!FileManager.default.fileExists(atPath: checkpoint))
        let compare = try runBNKit(["compare-lr"] + quick + ["--lrs", "1e30"])
        #expect(compare.stdout.contains("diverged at epoch 1, step"), "\(compare.stdout)")
        #expect(!compare.stdout.contains("nan%"))
    }

    @Test("eval refuses /dev/zero, bad input_std, NaN weights; warns on a checkpoint without a scale")
    func evalInputs() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        expectFailure(try runBNKit(["eval", "--checkpoint", "/dev/zero", "--data", data], deadline: 20), mentions: ["character device"])

        let network = try SeedNetwork(inputSize: 16, hiddenSizes: [8, 4])
        let scaled = directory + "/scaled.safetensors", plain = directory + "/plain.safetensors", broken = directory + "/nan.safetensors"
        try network.saveCheckpoint(to: scaled, metadata: ["input_mean": "0.3", "input_std": "0"])
        expectFailure(try runBNKit(["eval", "--checkpoint", scaled, "--data", data]), mentions: ["input_std is \"0\""])

        try network.saveCheckpoint(to: plain)
        let warned = try runBNKit(["eval", "--checkpoint", plain, "--data", data])
        #expect(warned.status == 0 && warned.stderr.contains("records no input standardization"), "\(warned.stderr)")
        let given = try runBNKit(["eval", "--checkpoint", plain, "--data", data, "--input-mean", "0.2", "--input-std", "0.3"])
        #expect(given.status == 0 && given.stdout.contains("(x − 0.2) / 0.3, from --input-mean/--input-std"), "\(given.stdout)")

        var state = network.stateDict()
        state.tensors["layers.4.running_var"] = try SafeTensor(floats: [1, -1, 1, 1], shape: [4])
        try state.write(to: broken)
        expectFailure(try runBNKit(["eval", "--checkpoint", broken, "--data", data]), mentions: ["layers.4.running_var", "negative"])
        expectFailure(try runBNKit(["export", "--checkpoint", broken, "--fold-batchnorm", directory + "/f.safetensors"]),
                      mentions: ["layers.4.running_var"])
    }
}
