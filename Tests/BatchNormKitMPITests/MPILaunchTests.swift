import Foundation
import Testing

// Tests that launch jobs: `mpirun` on the built `bnkmpi` (the MPI checks of
// Benchmarks/bnkmpi/Checks.swift: each rank asserts and the job's status
// says whether all passed) and on `bnkit train --distributed mpi`, plus the
// thread ranks' faults through `bnkit train --ranks`. They start mpirun
// themselves, so they run under a plain `swift test`; traffic stays on this
// machine (shared memory). Every job has a deadline: a hang fails the test.

/// The directory of the test binary, where SwiftPM also puts bnkit and bnkmpi.
let productsDirectory: URL = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
                                 ?? CommandLine.arguments[0]).deletingLastPathComponent()

struct Job {
    let status: Int32
    let output: String
    let seconds: Double
    let timedOut: Bool
    /// When it ended, seconds since 1970.
    let ended: Double

    /// Seconds from the "fault at T" line of a fault check to the job's end.
    var secondsAfterFault: Double? {
        guard let line = output.split(separator: "\n").first(where: { $0.hasPrefix("fault at ") }),
              let t = Double(line.dropFirst("fault at ".count).trimmingCharacters(in: .whitespacesAndNewlines)) else { return nil }
        return ended - t
    }
}

/// Runs `executable arguments` with stdout and stderr into one file, killing
/// it (and its process group) after `deadline` seconds.
func launch(_ executable: String, _ arguments: [String], deadline: Double) throws -> Job {
    let log = FileManager.default.temporaryDirectory.appendingPathComponent("bnk-mpi-\(UUID().uuidString).log")
    try #require(FileManager.default.createFile(atPath: log.path, contents: nil), "cannot create \(log.path)")
    defer { try? FileManager.default.removeItem(at: log) }
    let handle = try FileHandle(forWritingTo: log)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    var environment = ProcessInfo.processInfo.environment
    // Open MPI refuses root without these (CI containers run as root)
    environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
    environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    process.environment = environment
    process.standardOutput = handle
    process.standardError = handle
    let start = Date()
    try process.run()
    var timedOut = false
    while process.isRunning {
        if Date().timeIntervalSince(start) > deadline {
            timedOut = true
            process.terminate()
            usleep(500_000)
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            break
        }
        usleep(20_000)
    }
    process.waitUntilExit()
    try handle.close()
    let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
    return Job(status: process.terminationStatus, output: output, seconds: Date().timeIntervalSince(start), timedOut: timedOut,
               ended: Date().timeIntervalSince1970)
}

/// mpirun on this machine only: oversubscribed (more ranks than cores),
/// unbound, Open MPI's own point-to-point layer (ob1, not UCX, which picks
/// transports by itself) over shared memory and self only (no network).
let mpirunOptions = ["--oversubscribe", "--bind-to", "none", "--mca", "pml", "ob1", "--mca", "btl", "self,vader",
                     "--mca", "btl_vader_single_copy_mechanism", "none"]

func mpirunPath() -> String? {
    ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first { FileManager.default.isExecutableFile(atPath: $0) }
}

func mpirun(_ ranks: Int, _ program: String, _ arguments: [String], deadline: Double = 60) throws -> Job {
    let mpirun = try #require(mpirunPath(), "mpirun not found: make deps installs openmpi-bin")
    return try launch(mpirun, mpirunOptions + ["-np", "\(ranks)", productsDirectory.appendingPathComponent(program).path] + arguments,
                      deadline: deadline)
}

@Suite("MPI jobs under mpirun", .serialized)
struct MPILaunchTests {
    @Test("all-reduce (rank-order sums, the same bits everywhere), broadcast, barrier, count mismatch; syncbn; training vs one process",
          arguments: [("collectives", 2), ("collectives", 3), ("syncbn", 3), ("train", 2), ("train", 3)])
    func check(name: String, ranks: Int) throws {
        let job = try mpirun(ranks, "bnkmpi", ["check", name])
        #expect(!job.timedOut && job.status == 0, "\(name) on \(ranks) ranks: status \(job.status)\n\(job.output)")
        for rank in 0..<ranks {
            #expect(job.output.contains("ok \(name) rank \(rank) of \(ranks)"), "rank \(rank) did not pass:\n\(job.output)")
        }
    }

    @Test("bad data on one rank ends the job non-zero, rank 0 naming rank 1")
    func rankThrows() throws {
        let job = try mpirun(2, "bnkmpi", ["check", "fail-throw"], deadline: 30)
        #expect(!job.timedOut && job.status != 0, "status \(job.status) after \(job.seconds) s\n\(job.output)")
        let after = try #require(job.secondsAfterFault, "no fault line:\n\(job.output)")
        #expect(after < 10, "the job ended \(after) s after the fault")
        #expect(job.output.contains("check fail-throw failed: rank 1 failed: invalid label"), "\(job.output)")
        #expect(!job.output.contains("ok fail-throw"))
    }

    @Test("a killed rank ends the job non-zero within 10 s, mpirun naming it")
    func rankKilled() throws {
        let job = try mpirun(2, "bnkmpi", ["check", "fail-kill"], deadline: 30)
        #expect(!job.timedOut && job.status != 0, "status \(job.status)\n\(job.output)")
        let after = try #require(job.secondsAfterFault, "no fault line:\n\(job.output)")
        #expect(after < 10, "the job ended \(after) s after the kill")
        #expect(job.output.contains("rank 1") && job.output.contains("signal 9"), "\(job.output)")
    }

    @Test("ranks started with different settings refuse to start, naming the setting and the rank")
    func mismatch() throws {
        let job = try mpirun(3, "bnkmpi", ["check", "mismatch"], deadline: 30)
        #expect(!job.timedOut && job.status != 0, "status \(job.status)\n\(job.output)")
        #expect(job.output.contains("--batch-size differs on rank 2 from rank 0 (rank 0: 128)"), "\(job.output)")
    }
}

// MARK: - bnkit train on MPI and on threads

/// A tiny MNIST-layout dataset (6×6 images, 10 classes) in a new temporary directory.
func tinyDataset(train: Int = 96, test: Int = 40) throws -> URL {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bnk-mpi-data-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    func bigEndian(_ values: [UInt32]) -> [UInt8] { values.flatMap { v in (0..<4).map { UInt8((v >> (24 - 8 * $0)) & 0xFF) } } }
    for (prefix, count) in [("train", train), ("t10k", test)] {
        let labels = (0..<count).map { UInt8($0 % 10) }
        // class k: bright pixels in row k mod 6, plus a deterministic ripple
        let pixels = (0..<count * 36).map { i -> UInt8 in
            let sample = i / 36, row = (i % 36) / 6
            return UInt8((row == Int(labels[sample]) % 6 ? 200 : 20) + (i * 37) % 50)
        }
        try Data(bigEndian([0x0803, UInt32(count), 6, 6]) + pixels)
            .write(to: directory.appendingPathComponent("\(prefix)-images-idx3-ubyte"))
        try Data(bigEndian([0x0801, UInt32(count)]) + labels).write(to: directory.appendingPathComponent("\(prefix)-labels-idx1-ubyte"))
    }
    return directory
}

@Suite("bnkit train across ranks", .serialized)
struct TrainCommandRankTests {
    @Test("mpirun -np 2 bnkit train --distributed mpi: rank 0 alone writes the metrics and the checkpoint")
    func trainsOnTwoProcesses() throws {
        let data = try tinyDataset()
        defer { try? FileManager.default.removeItem(at: data) }
        let metrics = data.appendingPathComponent("metrics.csv"), checkpoint = data.appendingPathComponent("model.safetensors")
        let job = try mpirun(2, "bnkit", ["train", "--distributed", "mpi", "--data", data.path, "--epochs", "2", "--batch-size", "16",
                                          "--metrics", metrics.path, "--checkpoint", checkpoint.path])
        #expect(!job.timedOut && job.status == 0, "status \(job.status)\n\(job.output)")
        #expect(job.output.contains("2 MPI ranks"))
        // one report, from rank 0
        #expect(job.output.components(separatedBy: "final  test accuracy").count == 2, "\(job.output)")
        let lines = try String(contentsOf: metrics, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 3, "header and 2 epochs: \(lines)")
        #expect(FileManager.default.fileExists(atPath: checkpoint.path))
    }

    @Test("ranks with different flags (MPMD) refuse to start, naming the flag; unreadable data on rank 1 is named by rank 0")
    func refusals() throws {
        let data = try tinyDataset()
        defer { try? FileManager.default.removeItem(at: data) }
        let mpirun = try #require(mpirunPath())
        let bnkit = productsDirectory.appendingPathComponent("bnkit").path
        let common = ["train", "--distributed", "mpi", "--epochs", "1", "--batch-size", "16"]
        let seeds = try launch(mpirun, mpirunOptions + ["-np", "1", bnkit] + common + ["--data", data.path]
                                   + [":", "-np", "1", bnkit] + common + ["--data", data.path, "--seed", "1"], deadline: 60)
        #expect(!seeds.timedOut && seeds.status != 0, "status \(seeds.status)\n\(seeds.output)")
        #expect(seeds.output.contains("--seed differs on rank 1 from rank 0 (rank 0: 0)"), "\(seeds.output)")
        #expect(!seeds.output.contains("epoch 1/1"), "trained although the ranks disagree")

        let missing = try launch(mpirun, mpirunOptions + ["-np", "1", bnkit] + common + ["--data", data.path]
                                     + [":", "-np", "1", bnkit] + common + ["--data", data.path + "-missing"], deadline: 60)
        #expect(!missing.timedOut && missing.status != 0, "status \(missing.status)\n\(missing.output)")
        #expect(missing.output.contains("bnkit: error: rank 1 failed:"), "\(missing.output)")

        // mpirun without --distributed would run separate trainings: refused before any work
        let plain = try launch(mpirun, mpirunOptions + ["-np", "2", bnkit, "train", "--data", data.path, "--epochs", "1"], deadline: 60)
        #expect(!plain.timedOut && plain.status != 0, "status \(plain.status)\n\(plain.output)")
        #expect(plain.output.contains("add --distributed mpi"), "\(plain.output)")
    }

    @Test("--ranks 2 with an unwritable --metrics path fails at once instead of deadlocking")
    func threadRanksUnwritableMetrics() throws {
        let data = try tinyDataset()
        defer { try? FileManager.default.removeItem(at: data) }
        let job = try launch(productsDirectory.appendingPathComponent("bnkit").path,
                             ["train", "--ranks", "2", "--data", data.path, "--epochs", "1", "--batch-size", "16",
                              "--metrics", data.appendingPathComponent("no/such/dir/m.csv").path], deadline: 30)
        #expect(!job.timedOut && job.status != 0, "status \(job.status)\n\(job.output)")
        #expect(job.output.contains("metrics file"), "\(job.output)")
    }
}
