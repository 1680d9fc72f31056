import Testing
import BatchNormKit
import BatchNormReference
import BatchNormTestSupport

// The layers' matrix products on both backends (MatrixMultiplication): each
// against the Double twins, and the seed network trained on one against the
// other. The backend is set for this test's thread only
// (`MatrixMultiplication._withBackend`), so tests on other threads keep theirs.
//
// Tolerances: each output is a Float32 chain of k multiply-adds; with inputs
// of unit scale its error against Double is a few ulps of √k-sized sums,
// rtol 1e-4 and atol 1e-5·√k as the bench's Linear checks. The two backends
// add the same terms in different orders (OpenBLAS's blocks are its own):
// after 5 training steps the parameters agree to 1e-4 relative.

@Suite("Matrix products on both backends: OpenBLAS and MatrixKernel's 16-lane tiles")
struct MatrixBackendTests {
    @Test("Linear forward and backward against the Double twins, on either backend", arguments: MatrixBackend.allCases)
    func linear(_ backend: MatrixBackend) throws {
        // 40 outputs: MatrixKernel takes the 40-wide products (≥ 32 columns), OpenBLAS the 3-wide one
        for (i, o, n) in [(70, 40, 33), (40, 3, 9)] {
            let lin = try Linear(inFeatures: i, outFeatures: o, seed: UInt64(i + o))
            var rng = ReferenceRandom(seed: UInt64(i * o))
            let x = rng.normals(n * i), dy = rng.normals(n * o)
            let w = lin.weight.value.scalars, b = lin.bias!.value.scalars
            let (y, dx) = try MatrixMultiplication._withBackend(backend) {
                let y = try lin.forward(try Tensor(shape: [n, i], scalars: x))
                lin.weight.grad.fill(0); lin.bias!.grad.fill(0)
                let dx = try lin.backward(try Tensor(shape: [n, o], scalars: dy), needsInputGradient: true)!
                return (y.scalars, dx.scalars)
            }
            let wantY = BatchNormReference.linearForward(x, n: n, inFeatures: i, weight: w, bias: b, outFeatures: o)
            let want = BatchNormReference.linearBackward(gradOutput: dy, x: x, n: n, inFeatures: i, weight: w, outFeatures: o)
            let atol = { (k: Int) in 1e-5 * Double(k).squareRoot() }
            for (name, got, ref, k) in [("y", y, wantY, i), ("dx", dx, want.input, o),
                                        ("dW", lin.weight.grad.scalars, want.weight, n), ("db", lin.bias!.grad.scalars, want.bias, n)] {
                let r = compareToReference(got, ref, rtol: 1e-4, atol: atol(k))
                #expect(r.ok, "\(backend) (\(i)→\(o), N=\(n)) \(name): \(r.worst)")
            }
        }
    }

    @Test("Conv2d forward and backward: MatrixKernel within rounding of OpenBLAS")
    func conv() throws {
        var rng = ReferenceRandom(seed: 99)
        let x = rng.normals(2 * 4 * 9 * 9), dy = rng.normals(2 * 40 * 9 * 9)
        var runs: [[[Float]]] = []
        for backend in MatrixBackend.allCases {
            let conv = try Conv2d(inChannels: 4, outChannels: 40, kernelSize: 3, padding: 1, seed: 3)
            runs.append(try MatrixMultiplication._withBackend(backend) {
                let y = try conv.forward(try Tensor(shape: [2, 4, 9, 9], scalars: x))
                let dx = try conv.backward(try Tensor(shape: [2, 40, 9, 9], scalars: dy), needsInputGradient: true)!
                return [y.scalars, dx.scalars, conv.weight.grad.scalars]
            })
        }
        for (index, name) in ["y", "dx", "dW"].enumerated() {
            let r = compareToReference(runs[1][index], runs[0][index], rtol: 1e-4, atol: 1e-4)
            #expect(r.ok, "\(name): \(r.worst)")
        }
    }

    @Test("five seed-network steps: the same parameters within rounding on either backend")
    func training() throws {
        var rng = ReferenceRandom(seed: 5)
        let data = try LabeledSamples(features: rng.normals(64 * 784), labels: (0..<64).map { Int32($0 % 10) },
                                      featureCount: 784)
        var parameters: [[Float]] = []
        for backend in MatrixBackend.allCases {
            let net = try SeedNetwork(seed: 1)
            let trainer = try Trainer(model: net, configuration: TrainingConfiguration(epochs: 5, batchSize: 64))
            try MatrixMultiplication._withBackend(backend) {
                for _ in 0..<5 { _ = try trainer.trainEpoch(on: data) }
            }
            parameters.append(net.parameters().flatMap { $0.value.scalars })
        }
        let r = compareToReference(parameters[1], parameters[0], rtol: 1e-4, atol: 1e-5)
        #expect(r.ok, "simd16 against openblas after 5 steps: \(r.worst)")
    }

    @Test("the machine rule: MatrixKernel only in an AVX-512 build, and only where OpenBLAS's kernel has 8 lanes")
    func rule() {
        #if BATCHNORMKIT_AVX512
        #expect(MatrixMultiplication.machineBackend == (MatrixMultiplication.openBLASUsesSixteenLanes ? .openBLAS : .simd16))
        #else
        #expect(MatrixMultiplication.machineBackend == .openBLAS)
        #endif
    }
}
