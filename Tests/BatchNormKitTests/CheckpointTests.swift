import Foundation
import Testing
@testable import BatchNormKit

// Checkpoints: PyTorch state_dict names and dtypes in safetensors, strict
// all-or-nothing loading, atomic saving, architecture in the metadata, and a
// state_dict written by PyTorch itself.

// MARK: - Helpers

/// A seed-style network whose state is not the initial one: three training
/// forwards move the running statistics (num_batches_tracked = 3) and γ, β
/// are moved away from 1 and 0.
func checkpointTestNetwork(batchNorm: Bool = true, placement: NormPlacement = .before, seed: UInt64 = 1,
                           inputSize: Int = 12, hiddenSizes: [Int] = [8, 6], classes: Int = 3) throws -> SeedNetwork {
    let network = try SeedNetwork(inputSize: inputSize, hiddenSizes: hiddenSizes, classes: classes,
                                  batchNorm: batchNorm, placement: placement, seed: seed)
    var generator = SplitMix64(seed: seed &+ 1000)
    for _ in 0..<3 { _ = try network.forward(checkpointTestInput(rows: 8, columns: inputSize, &generator)) }
    for case let norm as BatchNorm1d in network.layers.layers {
        norm.weight!.value.withUnsafeMutableBufferPointer { for i in $0.indices { $0[i] = Float.random(in: 0.5..<1.5, using: &generator) } }
        norm.bias!.value.withUnsafeMutableBufferPointer { for i in $0.indices { $0[i] = Float.random(in: -0.5..<0.5, using: &generator) } }
    }
    return network
}

/// Uniform [0, 1) inputs `(rows, columns)`, like pixels.
func checkpointTestInput(rows: Int, columns: Int, _ generator: inout SplitMix64) -> Tensor {
    try! Tensor(shape: [rows, columns], scalars: (0..<(rows * columns)).map { _ in Float.random(in: 0..<1, using: &generator) })
}


/// The lists of a `checkpointMismatch` thrown by `body`, or nil (recorded as an issue).
private func mismatch(_ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation)
    -> (missing: [String], unexpected: [String], mismatched: [String], text: String)? {
    do {
        try body()
        Issue.record("expected checkpointMismatch, nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as BatchNormKitError {
        if case let .checkpointMismatch(_, missing, unexpected, mismatched) = error {
            return (missing, unexpected, mismatched, error.description)
        }
        Issue.record("expected checkpointMismatch, got \(error)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected checkpointMismatch, got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

/// Every state value of a network, flattened, for before/after comparisons.
private func stateValues(_ network: Layer) -> [String: [Float]] {
    var values: [String: [Float]] = [:]
    for (name, entry) in network.namedStateEntries(prefix: "") {
        switch entry {
        case let .parameter(p): values[name] = p.value.scalars
        case let .buffer(t): values[name] = t.scalars
        case let .batchCounter(norm): values[name] = [Float(norm.numBatchesTracked)]
        }
    }
    return values
}

@Suite("Checkpoints (safetensors, PyTorch state_dict)")
struct CheckpointTests {
    // MARK: - Round trip

    @Test("save → load reproduces every value and the eval outputs bit for bit", arguments: [NormPlacement.before, .after])
    func roundTripIsBitExact(placement: NormPlacement) throws {
        let directory = makeTemporaryDirectory("CheckpointTests")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/model.safetensors"
        let original = try checkpointTestNetwork(placement: placement, inputSize: 784, hiddenSizes: [256, 64], classes: 10)
        try original.saveCheckpoint(to: path, metadata: ["note": "round trip"])

        let restored = try SeedNetwork(placement: placement, seed: 99)
        try restored.loadCheckpoint(from: path)
        #expect(stateValues(restored) == stateValues(original))
        let rebuilt = try SeedNetwork(checkpoint: path)
        #expect(rebuilt.architecture == original.architecture)
        #expect(stateValues(rebuilt) == stateValues(original))

        var generator = SplitMix64(seed: 5)
        let x = checkpointTestInput(rows: 16, columns: 784, &generator)
        original.eval(); restored.eval(); rebuilt.eval()
        let want = try original.forward(x).scalars
        #expect(try restored.forward(x).scalars == want)
        #expect(try rebuilt.forward(x).scalars == want)
        #expect(try SafeTensorsFile(contentsOf: path).metadata["note"] == "round trip")
    }

    @Test("names, shapes and dtypes are exactly those of PyTorch's state_dict")
    func layoutMatchesPyTorch() throws {
        let state = try SeedNetwork().stateDict()
        #expect(state.tensors["layers.0.weight"]?.shape == [256, 784])
        #expect(state.tensors["layers.1.num_batches_tracked"]?.dtype == .i64)
        #expect(state.tensors["layers.1.num_batches_tracked"]?.shape == [])
        #expect(state.tensors["layers.4.running_var"]?.dtype == .f32)
        let path = checkpointFixturePath("seed_state_dict.safetensors")
        try #require(FileManager.default.fileExists(atPath: path),
                     "missing PyTorch fixture \(path): run `make fixtures` (Scripts/make_fixtures.py, needs torch)")
        let torch = try SafeTensorsFile(contentsOf: path)
        #expect(Set(state.tensors.keys) == Set(torch.tensors.keys))
        for (name, tensor) in torch.tensors {
            #expect(state.tensors[name]?.dtype == tensor.dtype, "\(name) dtype")
            #expect(state.tensors[name]?.shape == tensor.shape, "\(name) shape")
        }
    }

    // MARK: - Strict loading

    @Test("a missing entry is named")
    func missingEntry() throws {
        let network = try checkpointTestNetwork()
        var file = network.stateDict()
        file.tensors["layers.1.running_var"] = nil
        let found = mismatch { try network.loadStateDict(file, path: "m.safetensors") }
        #expect(found?.missing == ["layers.1.running_var"])
        #expect(found?.unexpected == [] && found?.mismatched == [])
        #expect(found?.text.contains("m.safetensors") == true)
    }

    @Test("unexpected entries are named, in PyTorch's order")
    func unexpectedEntries() throws {
        let network = try checkpointTestNetwork()
        var file = network.stateDict()
        file.tensors["layers.10.weight"] = try SafeTensor(floats: [1], shape: [1])
        file.tensors["layers.9.weight"] = try SafeTensor(floats: [1], shape: [1])
        let found = mismatch { try network.loadStateDict(file) }
        #expect(found?.unexpected == ["layers.9.weight", "layers.10.weight"])
        #expect(found?.missing == [])
    }

    @Test("a mis-shaped entry says what was expected and what was found")
    func misshapedEntry() throws {
        let network = try SeedNetwork()
        var file = network.stateDict()
        file.tensors["layers.0.weight"] = try SafeTensor(floats: [Float](repeating: 0, count: 128 * 784), shape: [128, 784])
        let found = mismatch { try network.loadStateDict(file) }
        #expect(found?.mismatched == ["layers.0.weight: expected F32 [256, 784], got F32 [128, 784]"])
    }

    @Test("a wrong dtype is reported, including num_batches_tracked as a float")
    func wrongDtype() throws {
        let network = try checkpointTestNetwork()
        var file = network.stateDict()
        file.tensors["layers.1.num_batches_tracked"] = try SafeTensor(floats: [3], shape: [])
        file.tensors["layers.0.bias"] = try SafeTensor(doubles: [Double](repeating: 0, count: 8), shape: [8])
        let found = mismatch { try network.loadStateDict(file) }
        #expect(found?.mismatched == ["layers.0.bias: expected F32 [8], got F64 [8]",
                                      "layers.1.num_batches_tracked: expected I64 [], got F32 []"])
    }

    @Test("all problems are collected at once and nothing is modified")
    func allOrNothing() throws {
        let network = try checkpointTestNetwork(seed: 1)
        let before = stateValues(network)
        var file = try checkpointTestNetwork(seed: 2).stateDict()   // different values, same shapes
        file.tensors["layers.3.weight"] = nil
        file.tensors["layers.4.bias"] = try SafeTensor(floats: [0, 0], shape: [2])
        file.tensors["layers.7.weight"] = try SafeTensor(floats: [0], shape: [1])
        let found = mismatch { try network.loadStateDict(file) }
        #expect(found?.missing == ["layers.3.weight"])
        #expect(found?.unexpected == ["layers.7.weight"])
        #expect(found?.mismatched == ["layers.4.bias: expected F32 [6], got F32 [2]"])
        #expect(stateValues(network) == before)
    }

    @Test("a checkpoint of another placement does not load silently")
    func otherPlacement() throws {
        let after = try checkpointTestNetwork(placement: .after).stateDict()
        let found = mismatch { try checkpointTestNetwork(placement: .before).loadStateDict(after) }
        #expect(found?.missing.contains("layers.1.weight") == true)
        #expect(found?.unexpected.contains("layers.2.weight") == true)
    }

    // MARK: - Architecture

    @Test("the architecture is written to the metadata and, without it, inferred from the names",
          arguments: [(true, NormPlacement.before), (true, .after), (false, .before)])
    func architecture(batchNorm: Bool, placement: NormPlacement) throws {
        let network = try checkpointTestNetwork(batchNorm: batchNorm, placement: placement, hiddenSizes: [8, 6, 5])
        let file = network.stateDict(metadata: ["norm": "ignored: the architecture wins"])
        #expect(try NetworkArchitecture(metadata: file.metadata, path: "f") == network.architecture)
        var bare = file
        bare.metadata = [:]
        #expect(try NetworkArchitecture(metadata: bare.metadata, path: "f") == nil)
        #expect(try NetworkArchitecture(inferringFrom: bare, path: "f") == network.architecture)
        let rebuilt = try SeedNetwork(stateDict: bare)
        #expect(stateValues(rebuilt) == stateValues(network))
    }

    @Test("malformed architecture metadata is a format error naming the key")
    func badMetadata() throws {
        var metadata = NetworkArchitecture().metadata
        metadata["hidden_sizes"] = "256,x"
        #expect(throws: BatchNormKitError.fileFormat(path: "f", reason: "metadata: hidden_sizes \"256,x\" is not a comma-separated list of positive integers")) {
            _ = try NetworkArchitecture(metadata: metadata, path: "f")
        }
        #expect(throws: BatchNormKitError.self) {
            _ = try NetworkArchitecture(inferringFrom: SafeTensorsFile(), path: "empty")
        }
    }

    // MARK: - Atomic writes

    @Test("saving over a checkpoint replaces it whole and leaves no temporary file")
    func saveOverExisting() throws {
        let directory = makeTemporaryDirectory("CheckpointTests")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/model.safetensors"
        try checkpointTestNetwork(seed: 1).saveCheckpoint(to: path)
        let second = try checkpointTestNetwork(seed: 2)
        try second.saveCheckpoint(to: path)
        let loaded = try checkpointTestNetwork(seed: 3)
        try loaded.loadCheckpoint(from: path)
        #expect(stateValues(loaded) == stateValues(second))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["model.safetensors"])
    }

    @Test("a failed save throws fileUnreadable and leaves the old file and no temporary file")
    func failedSave() throws {
        let directory = makeTemporaryDirectory("CheckpointTests")
        defer {
            chmod(directory, 0o755)
            try? FileManager.default.removeItem(atPath: directory)
        }
        let network = try checkpointTestNetwork()
        #expect(throws: BatchNormKitError.self) { try network.saveCheckpoint(to: directory + "/no/such/dir/model.safetensors") }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).isEmpty)

        // An unwritable directory: only meaningful when not root (root writes anyway).
        guard getuid() != 0 else { return }
        let path = directory + "/model.safetensors"
        try network.saveCheckpoint(to: path)
        let old = try Data(contentsOf: URL(fileURLWithPath: path))
        chmod(directory, 0o555)
        #expect(throws: BatchNormKitError.self) { try checkpointTestNetwork(seed: 7).saveCheckpoint(to: path) }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == old)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["model.safetensors"])
    }

    // MARK: - A state_dict written by PyTorch

    @Test("PyTorch's seed_state_dict loads and reproduces PyTorch's eval logits within 1e-5")
    func pyTorchStateDict() throws {
        let statePath = checkpointFixturePath("seed_state_dict.safetensors")
        let evalPath = checkpointFixturePath("seed_eval.safetensors")
        for path in [statePath, evalPath] {
            try #require(FileManager.default.fileExists(atPath: path),
                         "missing PyTorch fixture \(path): run `make fixtures` (Scripts/make_fixtures.py, needs torch)")
        }
        let network = try SeedNetwork(checkpoint: statePath)
        #expect(network.architecture == NetworkArchitecture())   // inferred: 784-256-64-10, BN before ReLU
        for case let norm as BatchNorm1d in network.layers.layers { #expect(norm.numBatchesTracked == 20) }

        let golden = try SafeTensorsFile(contentsOf: evalPath)
        let x = try #require(golden.tensors["x"]), logits = try #require(golden.tensors["logits"])
        network.eval()
        let output = try network.forward(Tensor(shape: x.shape, scalars: x.floats))
        #expect(output.shape == logits.shape)
        let worst = zip(output.scalars, try logits.floats).map { abs($0 - $1) }.max() ?? .infinity
        #expect(worst <= 1e-5, "max |logit difference| \(worst)")
    }
}

/// A file of `Tests/BatchNormKitTests/Fixtures`.
func checkpointFixturePath(_ name: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").appendingPathComponent(name).path
}
