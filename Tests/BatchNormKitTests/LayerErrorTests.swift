import Testing
@testable import BatchNormKit

@Suite("Bad input gets a typed error")
struct LayerErrorTests {
    @Test("BatchNorm1d constructor arguments")
    func constructor() {
        #expect(throws: BatchNormKitError.invalidArgument(name: "eps", value: "0.0", requirement: "must be a finite number > 0")) {
            try BatchNorm1d(numFeatures: 3, eps: 0)
        }
        #expect(throws: BatchNormKitError.self) { try BatchNorm1d(numFeatures: 3, eps: -1e-5) }
        #expect(throws: BatchNormKitError.self) { try BatchNorm1d(numFeatures: 3, momentum: 1.5) }
        #expect(throws: BatchNormKitError.self) { try BatchNorm1d(numFeatures: 3, momentum: -0.1) }
        #expect(throws: BatchNormKitError.self) { try BatchNorm1d(numFeatures: 0) }
        #expect(throws: Never.self) { try BatchNorm1d(numFeatures: 3, momentum: nil) }
        #expect(throws: Never.self) { try BatchNorm1d(numFeatures: 3, momentum: 1) }
    }

    @Test("BatchNorm1d inputs: shape, features, empty batch, one value per feature")
    func inputs() throws {
        let bn = try BatchNorm1d(numFeatures: 4)
        #expect(throws: BatchNormKitError.featureCountMismatch(context: "BatchNorm1d(4)", expected: 4, got: 3)) {
            try bn.forward(.of([2, 3], [Float](repeating: 0, count: 6)))
        }
        #expect(throws: BatchNormKitError.self) { try bn.forward(.of([8], [Float](repeating: 0, count: 8))) }
        #expect(throws: BatchNormKitError.emptyBatch(context: "BatchNorm1d(4)")) {
            try bn.forward(try Tensor(zeros: [0, 4]))
        }
        #expect(throws: BatchNormKitError.notEnoughValuesPerFeature(context: "BatchNorm1d(4)", shape: [1, 4])) {
            try bn.forward(.of([1, 4], [1, 2, 3, 4]))
        }
        // (1, C, L) with L > 1 has L values per feature: allowed, as in PyTorch
        #expect(throws: Never.self) { try bn.forward(.of([1, 4, 2], [1, 2, 3, 4, 5, 6, 7, 8])) }
        let message = BatchNormKitError.notEnoughValuesPerFeature(context: "BatchNorm1d(4)", shape: [1, 4]).description
        #expect(message.contains("more than 1 value per feature"))
        // a gradient of the wrong shape
        _ = try bn.forward(.of([2, 4], [1, 2, 3, 4, 5, 6, 7, 8]))
        #expect(throws: BatchNormKitError.self) { try bn.backward(.of([2, 3], [Float](repeating: 0, count: 6))) }
    }

    @Test("BatchNorm2d inputs: only (N, C, H, W), with more than one value per channel")
    func inputs2d() throws {
        let bn = try BatchNorm2d(numFeatures: 2)
        #expect(throws: BatchNormKitError.shapeMismatch(context: "BatchNorm2d(2)", expected: "(N, 2, H, W)", got: [4, 2])) {
            try bn.forward(.of([4, 2], [Float](repeating: 0, count: 8)))
        }
        #expect(throws: BatchNormKitError.featureCountMismatch(context: "BatchNorm2d(2)", expected: 2, got: 3)) {
            try bn.forward(.of([1, 3, 2, 2], [Float](repeating: 0, count: 12)))
        }
        #expect(throws: BatchNormKitError.notEnoughValuesPerFeature(context: "BatchNorm2d(2)", shape: [1, 2, 1, 1])) {
            try bn.forward(.of([1, 2, 1, 1], [1, 2]))
        }
        // one sample of 2×1 pixels: two values per channel, as PyTorch allows
        let y = try bn.forward(.of([1, 2, 2, 1], [1, 3, 10, 30]))
        #expect(y.shape == [1, 2, 2, 1])
        #expect(abs(y.scalars[0] + 1) < 1e-3 && abs(y.scalars[1] - 1) < 1e-3)
    }

    @Test("Linear, Tensor, loss and optimizer arguments")
    func others() throws {
        let linear = try Linear(inFeatures: 3, outFeatures: 2)
        #expect(throws: BatchNormKitError.featureCountMismatch(context: "Linear(3→2)", expected: 3, got: 4)) {
            try linear.forward(.of([1, 4], [1, 2, 3, 4]))
        }
        #expect(throws: BatchNormKitError.self) { try linear.backward(.of([1, 2], [1, 2])) }   // before forward
        #expect(throws: BatchNormKitError.elementCountMismatch(context: "Tensor(shape: [2, 2])", expected: 4, got: 3)) {
            try Tensor(shape: [2, 2], scalars: [1, 2, 3])
        }
        #expect(throws: BatchNormKitError.self) { try Tensor(zeros: [2, -1]) }
        let ce = CrossEntropyLoss()
        #expect(throws: BatchNormKitError.self) { try ce.forward(logits: .of([2, 3], [0, 0, 0, 0, 0, 0]), labels: [0, 3]) }
        #expect(throws: BatchNormKitError.self) { try ce.forward(logits: .of([2, 3], [0, 0, 0, 0, 0, 0]), labels: [0]) }
        #expect(throws: BatchNormKitError.self) { try SGD(parameters: [], learningRate: -1) }
        #expect(throws: BatchNormKitError.self) { try SGD(parameters: [], learningRate: 0.1, nesterov: true) }
    }
}
