import Foundation
import Testing
@testable import BatchNormKit

// PyTorch interop beyond the lesson's MyNetwork names, PyTorch itself reading
// our training checkpoints (when a Python with torch is at hand), and the
// torchinfo-like summary.

/// A Python that imports torch: the package's `.venv/bin/python`, else `python3`; nil if neither does.
let torchPython: String? = {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    for candidate in [root.appendingPathComponent(".venv/bin/python").path, "/usr/bin/env"] {
        let arguments = candidate == "/usr/bin/env" ? ["python3", "-c", "import torch, safetensors"] : ["-c", "import torch, safetensors"]
        guard FileManager.default.isExecutableFile(atPath: candidate), (try? runProcess(candidate, arguments))?.status == 0 else { continue }
        return candidate
    }
    return nil
}()

/// Runs a program; its exit status and standard output.
func runProcess(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.standardError
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

@Suite("PyTorch interop and summary")
struct InteropAndSummaryTests {
    @Test("a bare nn.Sequential state dict (0.weight, 1.running_mean, …) loads like MyNetwork's")
    func bareSequentialLoads() throws {
        let lesson = try fixture("seed_state_dict.safetensors")
        var bare = SafeTensorsFile()
        for (name, tensor) in lesson.tensors { bare.tensors[String(name.dropFirst("layers.".count))] = tensor }
        #expect(bare.tensors["0.weight"] != nil && bare.tensors["1.running_mean"] != nil)
        let fromBare = try SeedNetwork(stateDict: bare), fromLesson = try SeedNetwork(stateDict: lesson)
        #expect(fromBare.architecture == fromLesson.architecture)
        for (name, tensor) in fromLesson.stateDict().tensors {
            #expect(fromBare.stateDict().tensors[name]?.bytes == tensor.bytes, "\(name)")
        }
    }

    @Test("neither naming: the error names both expected forms and what the file holds")
    func unknownNamesAreExplained() throws {
        var file = SafeTensorsFile()
        file.tensors["fc1.weight"] = try SafeTensor(floats: [1, 2], shape: [1, 2])
        do {
            _ = try SeedNetwork(stateDict: file, path: "other.safetensors")
            Issue.record("loaded a file without seed-network names")
        } catch let error as BatchNormKitError {
            let text = "\(error)"
            #expect(text.contains("layers.0.weight") && text.contains("0.weight") && text.contains("fc1.weight"), "\(text)")
        }
    }

    @Test("summary: every layer's output shape, parameters and buffers, and the totals; no state changes")
    func summaryOfTheSeedNetwork() throws {
        let model = try SeedNetwork(seed: 1)
        let before = model.stateDict().tensors
        let summary = try model.summary(batch: 4)
        #expect(summary.layers.map(\.type) == ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d", "ReLU", "Linear"])
        #expect(summary.layers.map(\.outputShape) == [[4, 256], [4, 256], [4, 256], [4, 64], [4, 64], [4, 64], [4, 10]])
        #expect(summary.layers.map(\.parameterCount) == [784 * 256 + 256, 2 * 256, 0, 256 * 64 + 64, 2 * 64, 0, 64 * 10 + 10])
        #expect(summary.layers.map(\.bufferCount) == [0, 2 * 256 + 1, 0, 0, 2 * 64 + 1, 0, 0])
        #expect(summary.totalParameters == 218_698 && summary.totalBuffers == 642)
        #expect(summary.description.contains("218,698"))
        #expect(model.isTraining, "the mode is restored")
        for (name, tensor) in model.stateDict().tensors { #expect(before[name]?.bytes == tensor.bytes, "\(name) changed") }
        #expect(throws: BatchNormKitError.self) { try model.layers.summary(inputShape: [1, 783]) }
    }

    @Test("PyTorch loads a training checkpoint (state dict plus extras) and reproduces its eval logits",
          .enabled(if: torchPython != nil, "skipped: no Python with torch (.venv/bin/python or python3); make venv-torch"))
    func pytorchReadsTrainingCheckpoint() throws {
        let python = try #require(torchPython)
        let directory = makeTemporaryDirectory("InteropTests")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let model = try SeedNetwork(seed: 5)
        let trainer = try Trainer(model: model, configuration: TrainingConfiguration(epochs: 1, batchSize: 16))
        let data = trainerTestBlobs(count: 64, features: 784, classes: 10, seed: 8)
        _ = try trainer.trainEpoch(on: data)
        let checkpoint = directory + "/train.safetensors", inputs = directory + "/inputs.safetensors"
        try trainer.saveTrainingCheckpoint(to: checkpoint)
        model.eval()
        let x = try Tensor(shape: [8, 784], scalars: Array(data.features.prefix(8 * 784)))
        let logits = try model.forward(x).copy()
        try SafeTensorsFile(tensors: ["x": try SafeTensor(floats: x.scalars, shape: [8, 784]),
                                      "logits": try SafeTensor(floats: logits.scalars, shape: [8, 10])], metadata: [:]).write(to: inputs)
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let script = root.appendingPathComponent("Scripts/check_checkpoint.py").path
        let arguments = (python == "/usr/bin/env" ? ["python3"] : []) + [script, checkpoint, "--input", inputs, "--json"]
        let result = try runProcess(python, arguments)
        #expect(result.status == 0)
        let report = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
        #expect(report["loaded"] as? Bool == true)
        #expect((report["training_state_entries"] as? Int ?? 0) > 0)
        // Float32 on both sides with different summation orders: logits of O(1) agree to ~1e-5.
        let difference = try #require(report["max_abs_diff_to_input_logits"] as? Double)
        #expect(difference <= 1e-4, "max |Δlogits| = \(difference)")
    }
}
