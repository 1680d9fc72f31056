import Testing
import BatchNormReference
@testable import BatchNormKit

// Conv2d against its naive Double twin (ConvolutionReference), central finite
// differences of that twin, and PyTorch's own numbers. Every output and
// gradient entry is a sum of at most a few hundred Float32 products of O(1)
// values, so Float32 rounding stays below ~1e-5 relative: rtol 1e-4 with an
// atol of 1e-4 (the size of the largest values) is tight enough that a
// misplaced tap or a missing window misses by O(0.1).

/// One Conv2d problem: the layer and the reference's view of it.
struct ConvCase: CustomTestStringConvertible, Sendable {
    var n, inChannels, outChannels, height, width, kernel: Int
    var stride = 1, padding = 0, dilation = 1, groups = 1, bias = true
    var testDescription: String {
        "N\(n) \(inChannels)→\(outChannels) \(height)×\(width) k\(kernel) s\(stride) p\(padding) d\(dilation) g\(groups)" + (bias ? "" : " no bias")
    }
    var shape: ConvolutionReference.Shape {
        .init(n: n, channels: inChannels, height: height, width: width, kernel: kernel, stride: stride, padding: padding, dilation: dilation)
    }
    var inputShape: [Int] { [n, inChannels, height, width] }
    var outputShape: [Int] { [n, outChannels, shape.outHeight, shape.outWidth] }
    func layer(seed: UInt64 = 1) throws -> Conv2d {
        try Conv2d(inChannels: inChannels, outChannels: outChannels, kernelSize: kernel, stride: stride, padding: padding,
                   dilation: dilation, groups: groups, bias: bias, seed: seed)
    }
}

let oddConvCases: [ConvCase] = [
    ConvCase(n: 2, inChannels: 3, outChannels: 4, height: 6, width: 5, kernel: 3),
    ConvCase(n: 3, inChannels: 2, outChannels: 3, height: 7, width: 6, kernel: 3, stride: 2, padding: 1),
    ConvCase(n: 2, inChannels: 4, outChannels: 6, height: 5, width: 7, kernel: 3, padding: 2, dilation: 2, groups: 2, bias: false),
    ConvCase(n: 1, inChannels: 6, outChannels: 3, height: 9, width: 4, kernel: 2, stride: 3, padding: 1, groups: 3),
    ConvCase(n: 2, inChannels: 1, outChannels: 5, height: 5, width: 5, kernel: 5),
    ConvCase(n: 2, inChannels: 2, outChannels: 2, height: 4, width: 6, kernel: 1, stride: 2),
    ConvCase(n: 1, inChannels: 3, outChannels: 2, height: 3, width: 3, kernel: 3, padding: 3),
]

@Suite("Conv2d")
struct Conv2dTests {
    @Test("forward and every gradient against the naive Double twin (train and eval mode)",
          arguments: oddConvCases, [true, false])
    func againstReference(c: ConvCase, training: Bool) throws {
        let conv = try c.layer()
        conv.setTraining(training)
        var rng = ReferenceRandom(seed: 5)
        let x = rng.normals(c.inputShape.reduce(1, *)), dy = rng.normals(c.outputShape.reduce(1, *))
        let y = try conv.forward(.of(c.inputShape, x))
        #expect(y.shape == c.outputShape)
        let w = conv.weight.value.scalars, b = conv.bias?.value.scalars
        let want = ConvolutionReference.conv2dForward(x, c.shape, weight: w, bias: b, outChannels: c.outChannels, groups: c.groups)
        let r = expectClose(y.scalars, want, rtol: 1e-4, atol: 1e-4, "y")
        #expect(r.ok, "\(r.message)")
        let dx = try conv.backward(.of(c.outputShape, dy))
        let grads = ConvolutionReference.conv2dBackward(gradOutput: dy, x: x, c.shape, weight: w, outChannels: c.outChannels, groups: c.groups)
        for (got, exact, what) in [(dx.scalars, grads.input, "dx"), (conv.weight.grad.scalars, grads.weight, "dW")] {
            let r = expectClose(got, exact, rtol: 1e-4, atol: 1e-4, what)
            #expect(r.ok, "\(r.message)")
        }
        if let bias = conv.bias {
            let r = expectClose(bias.grad.scalars, grads.bias, rtol: 1e-4, atol: 1e-4, "db")
            #expect(r.ok, "\(r.message)")
        }
    }

    @Test("gradients accumulate across backwards until zeroGrad, like PyTorch")
    func accumulation() throws {
        let c = oddConvCases[1]
        let conv = try c.layer()
        var rng = ReferenceRandom(seed: 8)
        let x = Tensor.of(c.inputShape, rng.normals(c.inputShape.reduce(1, *)))
        let dy = Tensor.of(c.outputShape, rng.normals(c.outputShape.reduce(1, *)))
        _ = try conv.forward(x); _ = try conv.backward(dy, needsInputGradient: false)
        let once = conv.weight.grad.scalars, onceBias = conv.bias!.grad.scalars
        _ = try conv.forward(x); _ = try conv.backward(dy, needsInputGradient: false)
        let twice = expectClose(conv.weight.grad.scalars, once.map { 2 * Double($0) }, rtol: 1e-6, atol: 1e-6, "dW twice")
        #expect(twice.ok, "\(twice.message)")
        let twiceBias = expectClose(conv.bias!.grad.scalars, onceBias.map { 2 * Double($0) }, rtol: 1e-6, atol: 1e-6, "db twice")
        #expect(twiceBias.ok, "\(twiceBias.message)")
        conv.weight.zeroGrad(); conv.bias!.zeroGrad()
        _ = try conv.forward(x); _ = try conv.backward(dy, needsInputGradient: false)
        #expect(conv.weight.grad.scalars == once)
        #expect(conv.bias!.grad.scalars == onceBias)
    }

    @Test("finite differences of the Double twin", arguments: [oddConvCases[1], oddConvCases[2], oddConvCases[3]])
    func finiteDifferences(c: ConvCase) throws {
        let conv = try c.layer(seed: 4)
        var rng = ReferenceRandom(seed: 9)
        let x = rng.normals(c.inputShape.reduce(1, *)), r = rng.normals(c.outputShape.reduce(1, *))
        _ = try conv.forward(.of(c.inputShape, x))
        let dx = try conv.backward(.of(c.outputShape, r)).scalars
        let xd = x.map(Double.init), wd = conv.weight.value.scalars.map(Double.init)
        let bd = conv.bias?.value.scalars.map(Double.init)
        func loss(_ x: [Double], _ w: [Double], _ b: [Double]?) -> Double {
            dot(ConvolutionReference.conv2dForward(x, c.shape, weight: w, bias: b, outChannels: c.outChannels, groups: c.groups), r)
        }
        // The loss is linear in each argument: the central difference is exact up to Double rounding.
        func check(_ analytic: [Float], _ at: [Double], _ f: ([Double]) -> Double, _ what: String) {
            for i in probeIndices(at.count) {
                let numeric = numericGradient(at, at: i, f)
                #expect(abs(Double(analytic[i]) - numeric) <= 1e-4 * max(1, abs(numeric)), "\(what)[\(i)]: \(analytic[i]) vs \(numeric)")
            }
        }
        check(dx, xd, { loss($0, wd, bd) }, "dx")
        check(conv.weight.grad.scalars, wd, { loss(xd, $0, bd) }, "dW")
        if let bd { check(conv.bias!.grad.scalars, bd, { loss(xd, wd, $0) }, "db") }
    }

    @Test("PyTorch fixtures: forward and every gradient",
          arguments: ["basic", "stride2_pad", "dilated_groups", "k1_stride3"])
    func pyTorch(name: String) throws {
        let f = try fixture("conv/conv2d_\(name).safetensors")
        let w = try f.tensor("weight"), x = try f.tensor("x"), dy = try f.tensor("dy")
        let hasBias = f.tensors["bias"] != nil
        let groups = x.shape[1] / w.shape[1]
        let stride = ["stride2_pad": 2, "k1_stride3": 3][name] ?? 1
        let padding = ["stride2_pad": 1, "dilated_groups": 2][name] ?? 0
        let conv = try Conv2d(inChannels: x.shape[1], outChannels: w.shape[0], kernelSize: w.shape[2], stride: stride,
                              padding: padding, dilation: name == "dilated_groups" ? 2 : 1, groups: groups, bias: hasBias)
        #expect(f.metadata["module"]?.contains("stride=(\(stride), \(stride))") ?? false || stride == 1)
        try conv.weight.value.assign(from: w)
        if hasBias { try conv.bias!.value.assign(from: try f.tensor("bias")) }
        let y = try conv.forward(x)
        let dx = try conv.backward(dy)
        // against float64 PyTorch on the same inputs, and float32 PyTorch
        var checks = [(y.scalars, "y"), (dx.scalars, "dx"), (conv.weight.grad.scalars, "dweight")]
        if hasBias { checks.append((conv.bias!.grad.scalars, "dbias")) }
        for (got, key) in checks {
            let exact = try #require(f.tensors[key + "_f64"]).doubles
            let r = expectClose(got, exact, rtol: 1e-5, atol: 2e-5, key + "_f64")
            #expect(r.ok, "\(name) \(r.message)")
            let torch32 = expectClose(got, try f.floats(key), rtol: 1e-4, atol: 1e-4, key)
            #expect(torch32.ok, "\(name) \(torch32.message)")
        }
    }

    @Test("PyTorch's default init: U(±1/√fan_in) for weight and bias, shape (out, in/groups, k, k)")
    func initialization() throws {
        let conv = try Conv2d(inChannels: 8, outChannels: 16, kernelSize: 3, groups: 2, seed: 7)
        #expect(conv.weight.value.shape == [16, 4, 3, 3])
        let bound = 1 / Float(4 * 9).squareRoot()
        for values in [conv.weight.value.scalars, conv.bias!.value.scalars] {
            #expect(values.allSatisfy { abs($0) <= bound })
            // uniform over the whole interval, not a narrower one
            #expect(values.map(abs).max()! > 0.8 * bound)
        }
        let names = conv.namedStateEntries(prefix: "features.0.").map(\.name)
        #expect(names == ["features.0.weight", "features.0.bias"])
    }

    @Test("typed errors: bad arguments, wrong input, a window that does not fit")
    func errors() throws {
        #expect(throws: BatchNormKitError.self) { try Conv2d(inChannels: 3, outChannels: 4, kernelSize: 3, groups: 2) }
        #expect(throws: BatchNormKitError.self) { try Conv2d(inChannels: 0, outChannels: 4, kernelSize: 3) }
        #expect(throws: BatchNormKitError.self) { try Conv2d(inChannels: 1, outChannels: 4, kernelSize: 0) }
        #expect(throws: BatchNormKitError.self) { try Conv2d(inChannels: 1, outChannels: 4, kernelSize: 3, stride: 0) }
        #expect(throws: BatchNormKitError.self) { try Conv2d(inChannels: 1, outChannels: 4, kernelSize: 3, padding: -1) }
        let conv = try Conv2d(inChannels: 2, outChannels: 3, kernelSize: 5, stride: 2, padding: 1)
        #expect(throws: BatchNormKitError.featureCountMismatch(context: conv.context, expected: 2, got: 3)) {
            try conv.forward(Tensor(zeros: [1, 3, 8, 8]))
        }
        #expect(throws: BatchNormKitError.self) { try conv.forward(Tensor(zeros: [4, 2 * 8 * 8])) }
        #expect(throws: BatchNormKitError.emptyBatch(context: conv.context)) { try conv.forward(Tensor(zeros: [0, 2, 8, 8])) }
        do {
            _ = try conv.forward(Tensor(zeros: [1, 2, 2, 8]))
            Issue.record("a 2×8 image under a 5×5 kernel with padding 1 must throw")
        } catch let error as BatchNormKitError {
            let text = error.description
            for part in ["kernel 5", "stride 2", "padding 1", "2×8", "[1, 2, 2, 8]"] {
                #expect(text.contains(part), "message lacks \(part): \(text)")
            }
        }
        // backward before forward, and a gradient of the wrong shape
        #expect(throws: BatchNormKitError.self) { try conv.backward(Tensor(zeros: [1, 3, 3, 3])) }
        _ = try conv.forward(Tensor(zeros: [1, 2, 8, 8]))
        #expect(throws: BatchNormKitError.self) { try conv.backward(Tensor(zeros: [1, 3, 3, 4])) }
    }
}
