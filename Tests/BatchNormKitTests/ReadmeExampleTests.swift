import Testing
import Foundation
import BatchNormKit

// The README's usage example, compiled and run. The second test keeps the
// two from drifting apart: every line of the first Swift block under the
// README's "Using the library" must appear, in order, in this file.

@Suite("README")
struct ReadmeExampleTests {
    @Test("the usage example runs")
    func usageExample() throws {
        // --- README example, verbatim ---
        // The seed network: 784 → Linear 256 → BatchNorm1d → ReLU → Linear 64 → BatchNorm1d → ReLU → Linear 10
        let model = try SeedNetwork(seed: 42)
        let optimizer = try SGD(parameters: model.parameters(), learningRate: 0.1, momentum: 0.9)
        let loss = CrossEntropyLoss()

        let images = try Tensor(shape: [4, 784], scalars: [Float](repeating: 0.5, count: 4 * 784))
        let labels: [Int32] = [3, 1, 4, 1]

        model.train()                                   // batch statistics; running buffers update
        optimizer.zeroGrad()
        let value = try loss.forward(logits: try model.forward(images), labels: labels)
        _ = try model.backward(try loss.backward(), needsInputGradient: false)
        optimizer.step()

        model.eval()                                    // running statistics; outputs per sample
        let probabilities = try model.probabilities(images)   // (4, 10), rows sum to 1
        print(value, probabilities.shape)
        // --- end of README example ---

        #expect(value.isFinite && value > 0)
        #expect(probabilities.shape == [4, 10])
        for row in 0..<4 {
            let sum = (0..<10).reduce(Float(0)) { $0 + probabilities[row, $1] }
            #expect(abs(sum - 1) < 1e-5)
        }
    }

    @Test("the README shows exactly the example this file runs")
    func exampleMatchesReadme() throws {
        let here = URL(fileURLWithPath: #filePath)
        let readme = try String(contentsOf: here.deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("README.md"), encoding: .utf8)
        // the first Swift block of "Using the library" (Installation's manifest snippets come before it)
        let usage = try #require(readme.components(separatedBy: "## Using the library\n").dropFirst().first)
        let block = try #require(usage.components(separatedBy: "```swift\n").dropFirst().first?
            .components(separatedBy: "```").first)
        let mine = try String(contentsOf: here, encoding: .utf8)
            .split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        var cursor = 0
        for line in block.split(separator: "\n").map({ $0.trimmingCharacters(in: .whitespaces) })
        where !line.isEmpty && line != "import BatchNormKit" {
            let found = mine[cursor...].firstIndex(of: line)
            #expect(found != nil, "README line not in the tested example: \(line)")
            if let found { cursor = found + 1 }
        }
    }
}
