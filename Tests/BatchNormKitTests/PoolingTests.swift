import Testing
import BatchNormReference
@testable import BatchNormKit

// MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, Flatten and Unflatten against the
// naive Double twins of ConvolutionReference and PyTorch's numbers. Max
// pooling copies values, so it matches exactly; averages of ≤ 25 Float32
// values are within a few ulps: rtol 1e-5, atol 1e-6.

/// One pooling problem: the layer kind, its window and the input shape.
struct PoolCase: CustomTestStringConvertible, Sendable {
    enum Kind: Sendable { case max, average, averageExcludingPadding }
    var kind: Kind
    var kernel: Int, stride: Int, padding: Int
    var shape: [Int]
    var testDescription: String { "\(kind) k\(kernel) s\(stride) p\(padding) on \(shape)" }
    var reference: ConvolutionReference.Shape {
        .init(n: shape[0], channels: shape[1], height: shape[2], width: shape[3], kernel: kernel, stride: stride, padding: padding)
    }
    func layer() throws -> Layer {
        switch kind {
        case .max: try MaxPool2d(kernelSize: kernel, stride: stride, padding: padding)
        case .average: try AvgPool2d(kernelSize: kernel, stride: stride, padding: padding)
        case .averageExcludingPadding: try AvgPool2d(kernelSize: kernel, stride: stride, padding: padding, countIncludePad: false)
        }
    }
    func expected(_ x: [Float], _ dy: [Float]) -> (output: [Double], input: [Double]) {
        switch kind {
        case .max: ConvolutionReference.maxPool2d(x, reference, gradOutput: dy)
        case .average: ConvolutionReference.avgPool2d(x, reference, gradOutput: dy)
        case .averageExcludingPadding: ConvolutionReference.avgPool2d(x, reference, countIncludePad: false, gradOutput: dy)
        }
    }
}

let poolCases: [PoolCase] = [
    PoolCase(kind: .max, kernel: 2, stride: 2, padding: 0, shape: [2, 3, 5, 7]),
    PoolCase(kind: .max, kernel: 3, stride: 2, padding: 1, shape: [2, 2, 7, 6]),
    PoolCase(kind: .max, kernel: 3, stride: 1, padding: 0, shape: [1, 2, 4, 5]),   // overlapping windows
    PoolCase(kind: .average, kernel: 2, stride: 2, padding: 0, shape: [2, 3, 5, 7]),
    PoolCase(kind: .average, kernel: 3, stride: 2, padding: 1, shape: [2, 2, 7, 6]),
    PoolCase(kind: .averageExcludingPadding, kernel: 3, stride: 2, padding: 1, shape: [2, 2, 7, 6]),
    PoolCase(kind: .averageExcludingPadding, kernel: 4, stride: 3, padding: 2, shape: [1, 1, 9, 5]),
]

@Suite("Pooling and shape layers")
struct PoolingTests {
    @Test("MaxPool2d and AvgPool2d forward and backward against the Double twin", arguments: poolCases)
    func againstReference(c: PoolCase) throws {
        let pool = try c.layer()
        var rng = ReferenceRandom(seed: 3)
        let x = rng.normals(c.shape.reduce(1, *))
        let y = try pool.forward(.of(c.shape, x))
        #expect(y.shape == [c.shape[0], c.shape[1], c.reference.outHeight, c.reference.outWidth])
        let dy = rng.normals(y.count)
        let dx = try pool.backward(.of(y.shape, dy))
        let want = c.expected(x, dy)
        let r = expectClose(y.scalars, want.output, rtol: 1e-5, atol: 1e-6, "y")
        #expect(r.ok, "\(r.message)")
        let g = expectClose(dx.scalars, want.input, rtol: 1e-5, atol: 1e-6, "dx")
        #expect(g.ok, "\(g.message)")
    }

    @Test("AdaptiveAvgPool2d(1) and (3) against the Double twin", arguments: [(1, [3, 4, 5, 3]), (3, [2, 2, 7, 5]), (2, [1, 2, 2, 2])])
    func adaptive(size: Int, shape: [Int]) throws {
        let pool = try AdaptiveAvgPool2d(size)
        var rng = ReferenceRandom(seed: 4)
        let x = rng.normals(shape.reduce(1, *))
        let y = try pool.forward(.of(shape, x))
        #expect(y.shape == [shape[0], shape[1], size, size])
        let dy = rng.normals(y.count)
        let dx = try pool.backward(.of(y.shape, dy))
        let want = ConvolutionReference.adaptiveAvgPool2d(x, n: shape[0], channels: shape[1], height: shape[2], width: shape[3],
                                                          outputSize: size, gradOutput: dy)
        let r = expectClose(y.scalars, want.output, rtol: 1e-5, atol: 1e-6, "y")
        #expect(r.ok, "\(r.message)")
        let g = expectClose(dx.scalars, want.input, rtol: 1e-5, atol: 1e-6, "dx")
        #expect(g.ok, "\(g.message)")
    }

    @Test("PyTorch fixtures", arguments: ["max_k2", "max_k3_s2_p1", "avg_k3_s2_p1", "avg_k3_s2_p1_exclude", "adaptive1", "adaptive3"])
    func pyTorch(name: String) throws {
        let f = try fixture("conv/pool_\(name).safetensors")
        let module = try #require(f.metadata["module"])
        let layer: Layer = switch name {
        case "max_k2": try MaxPool2d(kernelSize: 2)
        case "max_k3_s2_p1": try MaxPool2d(kernelSize: 3, stride: 2, padding: 1)
        case "avg_k3_s2_p1": try AvgPool2d(kernelSize: 3, stride: 2, padding: 1)
        case "avg_k3_s2_p1_exclude": try AvgPool2d(kernelSize: 3, stride: 2, padding: 1, countIncludePad: false)
        case "adaptive1": try AdaptiveAvgPool2d(1)
        default: try AdaptiveAvgPool2d(3)
        }
        #expect(module.contains(name.hasPrefix("max") ? "MaxPool2d" : name.hasPrefix("avg") ? "AvgPool2d" : "AdaptiveAvgPool2d"))
        let y = try layer.forward(try f.tensor("x"))
        #expect(y.shape == (try #require(f.tensors["y"])).shape)
        let dx = try layer.backward(try f.tensor("dy"))
        for (got, key) in [(y.scalars, "y"), (dx.scalars, "dx")] {
            let r = expectClose(got, try #require(f.tensors[key + "_f64"]).doubles, rtol: 1e-5, atol: 1e-6, key)
            #expect(r.ok, "\(name) \(r.message)")
        }
    }

    @Test("MaxPool2d: NaN wins its window; ties go to the first maximum")
    func maxPoolSpecialValues() throws {
        let pool = try MaxPool2d(kernelSize: 2)
        let y = try pool.forward(.of([1, 1, 2, 4], [1, .nan, 5, 5, 0, 2, 5, 1]))
        #expect(y.scalars[0].isNaN)
        #expect(y.scalars[1] == 5)
        let dx = try pool.backward(.of([1, 1, 1, 2], [10, 20]))
        #expect(dx.scalars == [0, 10, 20, 0, 0, 0, 0, 0])
    }

    @Test("Flatten and Unflatten: shapes and values round trip, gradients pass through")
    func shapes() throws {
        var rng = ReferenceRandom(seed: 6)
        let x = rng.normals(2 * 3 * 4 * 5)
        let flatten = Flatten(), unflatten = try Unflatten(sizes: [3, 4, 5])
        let flat = try flatten.forward(.of([2, 3, 4, 5], x))
        #expect(flat.shape == [2, 60])
        #expect(flat.scalars == x)
        let back = try unflatten.forward(flat)
        #expect(back.shape == [2, 3, 4, 5])
        #expect(back.scalars == x)
        let dy = rng.normals(120)
        let g = try unflatten.backward(.of([2, 3, 4, 5], dy))
        #expect(g.shape == [2, 60])
        let g2 = try flatten.backward(g)
        #expect(g2.shape == [2, 3, 4, 5] && g2.scalars == dy)
        #expect(throws: BatchNormKitError.featureCountMismatch(context: "Unflatten(1, [3, 4, 5])", expected: 60, got: 59)) {
            try unflatten.forward(Tensor(zeros: [2, 59]))
        }
        #expect(throws: BatchNormKitError.self) { try Unflatten(sizes: []) }
        #expect(throws: BatchNormKitError.self) { try flatten.forward(Tensor(zeros: [])) }
    }

    @Test("typed errors: arguments and windows that do not fit, with the sizes in the message")
    func errors() throws {
        #expect(throws: BatchNormKitError.self) { try MaxPool2d(kernelSize: 0) }
        #expect(throws: BatchNormKitError.self) { try MaxPool2d(kernelSize: 2, stride: 0) }
        #expect(throws: BatchNormKitError.self) { try MaxPool2d(kernelSize: 3, padding: 2) }   // PyTorch: pad ≤ kernel/2
        #expect(throws: BatchNormKitError.self) { try AvgPool2d(kernelSize: 2, padding: -1) }
        #expect(throws: BatchNormKitError.self) { try AdaptiveAvgPool2d(0) }
        let pool = try MaxPool2d(kernelSize: 3, stride: 2, padding: 1)
        // a 1×9 image under a 3×3 window with padding 1 fits once vertically (1 + 2 ≥ 3)
        #expect(try pool.forward(Tensor(zeros: [2, 4, 1, 9])).shape == [2, 4, 1, 5])
        do {
            _ = try AvgPool2d(kernelSize: 4, padding: 1).forward(Tensor(zeros: [2, 4, 1, 9]))
            Issue.record("a 1×9 image under a 4×4 window with padding 1 must throw")
        } catch let error as BatchNormKitError {
            for part in ["kernel 4", "stride 4", "padding 1", "1×9", "[2, 4, 1, 9]"] {
                #expect(error.description.contains(part), "message lacks \(part): \(error)")
            }
        }
        #expect(throws: BatchNormKitError.self) { try pool.forward(Tensor(zeros: [2, 16])) }
        #expect(throws: BatchNormKitError.self) { try pool.forward(Tensor(zeros: [0, 1, 4, 4])) }
        #expect(throws: BatchNormKitError.self) { try AdaptiveAvgPool2d(1).forward(Tensor(zeros: [2, 3, 4])) }
    }
}
