import Foundation
import Testing
@testable import BatchNormKit

// Issue 8's fault classes at the library level: output paths checked before
// work, no stale temporaries, no reading of devices or FIFOs, bounded gzip
// inflation, batch sizes from the data, no training on NaN, no loading of
// NaN weights or negative variances, and strict names before size checks.

/// The error `body` throws, or nil.
private func thrown(_ body: () throws -> Void) -> BatchNormKitError? {
    do { try body(); return nil } catch let error as BatchNormKitError { return error } catch { return nil }
}

@Suite("Reliability: output paths")
struct OutputPathTests {
    @Test("a missing directory, a file used as directory and a directory as target are refused with the reason")
    func refusals() throws {
        let directory = makeTemporaryDirectory("OutputPathTests")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/plain"
        FileManager.default.createFile(atPath: file, contents: Data([1]))

        let missing = thrown { try OutputPath.check(directory + "/nope/m.csv", role: "metrics file", kind: .stream) }
        #expect(missing?.description.contains("No such file or directory") == true, "\(String(describing: missing))")
        #expect(missing?.description.contains("metrics file") == true)
        let notDirectory = thrown { try OutputPath.check(file + "/x.safetensors", role: "checkpoint") }
        #expect(notDirectory?.description.contains("Not a directory") == true, "\(String(describing: notDirectory))")
        let isDirectory = thrown { try OutputPath.check(directory, role: "checkpoint") }
        #expect(isDirectory?.description.contains("directory") == true)
        // rename(2) over a device would replace it; a stream may write to it
        #expect(thrown { try OutputPath.check("/dev/null", role: "checkpoint") } != nil)
        #expect(thrown { try OutputPath.check("/dev/null", role: "metrics file", kind: .stream) } == nil)

        try OutputPath.check(directory + "/ok.safetensors", role: "checkpoint")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["plain"], "the probe file is removed")
    }

    @Test("an atomic save removes the temporaries of killed saves, keeps a live writer's")
    func staleTemporaries() throws {
        let directory = makeTemporaryDirectory("StaleTemporaries")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // a PID that has certainly exited: a child we waited for
        // (posix_spawn: Foundation's Process leaks under LeakSanitizer)
        var dead: pid_t = 0, status: Int32 = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/true"), nil]
        defer { free(argv[0]) }
        #expect(posix_spawn(&dead, "/bin/true", nil, nil, argv, environ) == 0)
        waitpid(dead, &status, 0)
        let names = [".m.safetensors.tmp-\(dead)-abc",          // killed writer: removed
                     ".m.safetensors.tmp-1-live",                 // PID 1 is alive and older than the file: kept
                     ".m.safetensors.tmp-1-reused",               // PID 1 started after the file was written: removed
                     ".m.safetensors.tmp-\(getpid())-thread",     // this process (another thread may be saving): kept
                     ".other.safetensors.tmp-\(dead)-abc"]        // another target's: kept
        for name in names { FileManager.default.createFile(atPath: directory + "/" + name, contents: Data([0])) }
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSince1970: 1000)],
                                              ofItemAtPath: directory + "/.m.safetensors.tmp-1-reused")

        try SeedNetwork(inputSize: 2, hiddenSizes: [2], classes: 2).saveCheckpoint(to: directory + "/m.safetensors")
        let left = Set(try FileManager.default.contentsOfDirectory(atPath: directory))
        #expect(left == ["m.safetensors", names[1], names[3], names[4]])
    }
}

@Suite("Reliability: reading")
struct ReadingReliabilityTests {
    @Test("devices and FIFOs are refused as checkpoints and IDX files, without blocking")
    func nonRegularFiles() throws {
        let directory = makeTemporaryDirectory("NonRegular")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let fifo = directory + "/fifo"
        #expect(mkfifo(fifo, 0o600) == 0)
        for path in ["/dev/zero", fifo, directory] {
            let checkpoint = thrown { _ = try SafeTensorsFile(contentsOf: path) }
            #expect(checkpoint?.description.contains("expected a regular file") == true, "\(path): \(String(describing: checkpoint))")
            let idx = thrown { _ = try IDXFile(contentsOf: path) }
            #expect(idx?.description.contains("expected a regular file") == true, "\(path): \(String(describing: idx))")
        }
    }

    @Test("a safetensors header is checked against the file size before the body is read")
    func headerFirst() throws {
        let directory = makeTemporaryDirectory("HeaderFirst")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/big.safetensors"
        var bytes = try SafeTensorsFile(tensors: ["x": SafeTensor(floats: [1], shape: [1])]).serialized()
        bytes += [UInt8](repeating: 0, count: 1 << 20)
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        let error = thrown { _ = try SafeTensorsFile(contentsOf: path) }
        #expect(error?.description.contains("the header describes 4 data bytes but the file holds 1048580") == true,
                "\(String(describing: error))")
        // a header length beyond the file
        var lying = bytes
        lying.replaceSubrange(0..<8, with: [0xFF, 0xFF, 0xFF, 0x7F, 0, 0, 0, 0])
        FileManager.default.createFile(atPath: path, contents: Data(lying))
        #expect(thrown { _ = try SafeTensorsFile(contentsOf: path) }?.description.contains("exceeds") == true)
    }

    @Test("a gzip member inflating far past what the IDX header needs is stopped, not inflated to its end")
    func gzipBomb() throws {
        let directory = makeTemporaryDirectory("GzipBomb")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/labels.gz"
        // header [4], 4 labels, then 16 MiB of zeros (16 KiB compressed)
        try IDXFile.writeFile([0, 0, 8, 1, 0, 0, 0, 4, 1, 2, 3, 4] + [UInt8](repeating: 0, count: 16 << 20), to: path, compressed: true)
        let error = thrown { _ = try IDXFile(contentsOf: path) }
        #expect(error?.description.contains("more than 65536 extra bytes (decompressed)") == true, "\(String(describing: error))")
    }
}

@Suite("Reliability: training")
struct TrainingReliabilityTests {
    private func samples(_ count: Int) -> LabeledSamples { trainerTestBlobs(count: count, features: 4, classes: 2, seed: 1) }
    private func network(batchNorm: Bool = true) throws -> SeedNetwork {
        try SeedNetwork(inputSize: 4, hiddenSizes: [8], classes: 2, batchNorm: batchNorm)
    }

    @Test("a batch larger than the data is a typed error, for any size up to Int.max", arguments: [5, 1_000_000_000_000, Int.max])
    func batchLargerThanData(batchSize: Int) throws {
        let trainer = try Trainer(model: network(), configuration: TrainingConfiguration(epochs: 1, batchSize: batchSize))
        let error = thrown { _ = try trainer.trainEpoch(on: samples(4)) }
        #expect(error?.description.contains("exceeds the 4 training samples") == true, "\(String(describing: error))")
    }

    @Test("data parallel: data that leaves no batch of 2 per rank is refused, not trained on 0 samples")
    func noBatchPerRank() throws {
        let groups = try ThreadProcessGroup.make(size: 2)
        let model = try SeedNetwork(inputSize: 4, hiddenSizes: [8], classes: 2, processGroup: groups[0])
        // before: batch 4 on 3 samples dropped the only batch (3 < 2 per rank) and reported loss nan
        let trainer = try Trainer(model: model, configuration: TrainingConfiguration(epochs: 1, batchSize: 4), processGroup: groups[0])
        let error = thrown { _ = try trainer.trainEpoch(on: samples(3)) }
        #expect(error?.description.contains("3 training samples") == true, "\(String(describing: error))")
        #expect(thrown { try trainer.checkBatches(for: samples(3), ranks: 2) } != nil)
        // the data itself too small for 2 per rank, whatever the batch
        let error2 = thrown { try Trainer(model: model, configuration: TrainingConfiguration(batchSize: 2)).checkBatches(for: samples(3), ranks: 2) }
        guard case .emptyBatch? = error2 else { Issue.record("expected emptyBatch, got \(String(describing: error2))"); return }
    }

    @Test("a non-finite loss stops training with diverged(epoch:step:loss:)", arguments: [Float(1e6), 1e30])
    func divergence(learningRate: Float) throws {
        let trainer = try Trainer(model: network(batchNorm: false),
                                  configuration: TrainingConfiguration(epochs: 5, batchSize: 4, learningRate: learningRate))
        var epochs = 0
        let error = thrown { _ = try trainer.fit(train: samples(64), test: samples(16), onEpoch: { _ in epochs += 1 }) }
        guard case let .diverged(epoch, step, loss)? = error else {
            Issue.record("expected diverged, got \(String(describing: error))"); return
        }
        #expect(epoch >= 1 && step >= 1 && !loss.isFinite)
        #expect(epochs == epoch - 1, "no epoch after the divergence is reported")
    }

    @Test("a failing epoch callback (e.g. a metrics write) stops fit")
    func throwingCallback() throws {
        struct Stop: Error {}
        let trainer = try Trainer(model: network(), configuration: TrainingConfiguration(epochs: 3, batchSize: 8))
        var epochs = 0
        #expect(throws: Stop.self) {
            try trainer.fit(train: samples(32), test: samples(8), onEpoch: { _ in epochs += 1; throw Stop() })
        }
        #expect(epochs == 1 && trainer.epochsCompleted == 1)
    }
}

@Suite("Reliability: loading")
struct LoadingReliabilityTests {
    private func state(placement: NormPlacement = .before) throws -> SafeTensorsFile {
        try SeedNetwork(inputSize: 6, hiddenSizes: [5, 4], classes: 3, placement: placement).stateDict()
    }

    @Test("NaN or infinite weights and a negative running_var are refused, naming the tensor")
    func nonFiniteState() throws {
        for (name, value) in [("layers.0.weight", Float.nan), ("layers.4.bias", .infinity), ("layers.1.running_var", -0.5),
                              ("layers.4.running_mean", -.infinity), ("layers.6.weight", .nan)] {
            var file = try state()
            var values = try file.tensors[name]!.floats
            values[values.count - 1] = value
            file.tensors[name] = try SafeTensor(floats: values, shape: file.tensors[name]!.shape)
            let error = thrown { _ = try SeedNetwork(stateDict: file, path: "c.safetensors") }
            #expect(error?.description.contains("tensor \"\(name)\"") == true, "\(name): \(String(describing: error))")
        }
        // a variance of exactly 0 is a valid constant feature
        var file = try state()
        file.tensors["layers.1.running_var"] = try SafeTensor(floats: [0, 0, 0, 0, 0], shape: [5])
        _ = try SeedNetwork(stateDict: file)
    }

    @Test("a missing or mis-typed entry is named before the size check speaks")
    func namesBeforeSizes() throws {
        var file = try state()
        file.tensors["layers.4.running_var"] = nil
        let missing = thrown { _ = try SeedNetwork(stateDict: file, path: "c") }
        #expect(missing == .checkpointMismatch(path: "c", missing: ["layers.4.running_var"], unexpected: [], mismatched: []))

        file = try state()
        file.tensors["layers.0.bias"] = try SafeTensor(doubles: [0, 0, 0, 0, 0], shape: [5])
        let retyped = thrown { _ = try SeedNetwork(stateDict: file, path: "c") }
        #expect(retyped == .checkpointMismatch(path: "c", missing: [], unexpected: [],
                                               mismatched: ["layers.0.bias: expected F32 [5], got F64 [5]"]))
    }

    @Test("stateLayout is exactly the built network's state entries", arguments: [(true, NormPlacement.before), (true, .after), (false, .before)])
    func layoutMatchesNetwork(batchNorm: Bool, placement: NormPlacement) throws {
        let architecture = NetworkArchitecture(inputSize: 7, hiddenSizes: [5, 4, 3], classes: 2, batchNorm: batchNorm, placement: placement)
        let built = try architecture.makeNetwork().namedStateEntries(prefix: "").map { name, entry in
            let (dtype, shape) = _checkpointLayout(entry)
            return "\(name) \(_describe(dtype, shape))"
        }
        #expect(architecture.stateLayout.map { "\($0.name) \(_describe($0.dtype, $0.shape))" } == built)
    }

    @Test("input_std or input_mean that is 0, negative, NaN, text or alone is refused; none is nil")
    func standardizationMetadata() throws {
        for (mean, std) in [("0.3", "0"), ("0.3", "-1"), ("0.3", "nan"), ("0.3", "abc"), ("inf", "0.3"), ("0.3", ""),
                            ("0.3", "inf")] {
            let error = thrown { _ = try InputStandardization(checkpointMetadata: ["input_mean": mean, "input_std": std], path: "c") }
            #expect(error?.description.contains("metadata") == true, "mean \(mean) std \(std): \(String(describing: error))")
        }
        #expect(thrown { _ = try InputStandardization(checkpointMetadata: ["input_std": "0.35"], path: "c") } != nil)
        #expect(try InputStandardization(checkpointMetadata: [:], path: "c") == nil)
        #expect(try InputStandardization(checkpointMetadata: ["input_mean": "0.25", "input_std": "0.5"], path: "c")
                == InputStandardization(mean: 0.25, std: 0.5))
    }
}

@Suite("Reliability: comparisons and seeds")
struct ComparisonReliabilityTests {
    @Test("maxAbsoluteDifference reports NaN and infinity instead of skipping them")
    func nanAware() throws {
        let a = Tensor.of([2, 2], [1, 2, 3, 4])
        #expect(try a.maxAbsoluteDifference(to: .of([2, 2], [1, 2.5, 3, 4])) == 0.5)
        #expect(try a.maxAbsoluteDifference(to: .of([2, 2], [1, .nan, 3, 4])).isNaN)
        #expect(try Tensor.of([2], [.nan, 1]).maxAbsoluteDifference(to: .of([2], [0, 1])).isNaN, "a NaN first is not skipped either")
        #expect(try a.maxAbsoluteDifference(to: .of([2, 2], [1, 2, .infinity, 4])) == .infinity)
        #expect(Tensor.of([2], [.nan, 3]).maxMagnitude.isNaN)
        #expect(throws: BatchNormKitError.self) { try a.maxAbsoluteDifference(to: .of([4], [1, 2, 3, 4])) }
    }

    /// Fuzz/corpus, two levels above this file's directory.
    private static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fuzz/corpus").path

    @Test("every committed fuzz seed is a valid file its parser accepts (seeds that fail teach libFuzzer nothing)")
    func seedsAreValid() throws {
        func files(_ target: String) throws -> [String] {
            try FileManager.default.contentsOfDirectory(atPath: Self.corpus + "/" + target).sorted().map { Self.corpus + "/\(target)/" + $0 }
        }
        let idx = try files("idx"), safetensors = try files("safetensors"), checkpoints = try files("checkpoint")
        #expect(idx.count >= 4 && safetensors.count >= 3 && checkpoints.count >= 5)
        for path in idx { _ = try IDXFile(contentsOf: path) }
        for path in safetensors { _ = try SafeTensorsFile(contentsOf: path) }
        for path in checkpoints { _ = try SeedNetwork(checkpoint: path) }
        #expect(try files("cli").count >= 4)
    }
}
