// The CNN's cases (issue 14): each convolution of `CNN` forward and backward
// at batch 128, one CNN training step, and eval-mode inference with and
// without BatchNorm folded into the convolutions. References are the naive
// Double loops of ConvolutionReference (and BatchNormReference), run on a
// prefix of the batch and scaled (see Bench.run); the limit is the same
// matrix product as one plain sgemm over the whole batch, at the FMA rate
// OpenBLAS reaches on that shape. Scripts/bench_conv_torch.py times the
// same cases in PyTorch.

import BatchNormKit
import BatchNormReference
import BatchNormTestSupport
import CBatchNormKitMallocCounter

/// The CNN of the cases: `CNN`'s default (28×28, 32 and 64 channels, 128
/// hidden) in full runs; a tiny one in --smoke.
struct ConvolutionSizes {
    var architecture: CNNArchitecture
    var batch: Int
    static let full = ConvolutionSizes(architecture: CNNArchitecture(), batch: 128)
    static let smoke = ConvolutionSizes(architecture: CNNArchitecture(imageSize: 12, channels: [3, 5], hiddenSize: 7), batch: 4)
}

/// Every convolution case; names start with `conv.` or `cnn.`.
func convolutionCases(_ bench: Bench, smoke: Bool) throws {
    let sizes = smoke ? ConvolutionSizes.smoke : .full
    let net = try CNN(sizes.architecture, seed: 14)
    var rng = ReferenceRandom(seed: 14)
    let a = sizes.architecture, n = sizes.batch
    let x = try Tensor(shape: [n, a.inChannels * a.imageSize * a.imageSize], scalars: rng.normals(n * a.imageSize * a.imageSize))
    // each convolution on the input it sees in the network
    var side = a.imageSize
    for conv in net.features.layers.compactMap({ $0 as? Conv2d }) {
        try convCases(bench, conv: conv, batch: n, side: side, rng: &rng)
        side = (side - conv.kernelSize + 1) / 2
    }
    try cnnStepCase(bench, net: net, x: x, rng: &rng)
    try cnnInferenceCases(bench, sizes: sizes, x: x)
}

/// `conv.forward (N, C, H, W)→C'` and `conv.backward …` of one convolution.
private func convCases(_ bench: Bench, conv: Conv2d, batch n: Int, side: Int, rng: inout ReferenceRandom) throws {
    let label = "(\(n), \(conv.inChannels), \(side), \(side))→\(conv.outChannels) k\(conv.kernelSize)"
    let names = ["conv.forward \(label)", "conv.backward \(label)"]
    guard names.contains(where: bench.wants) else { return }
    let shape = ConvolutionReference.Shape(n: n, channels: conv.inChannels, height: side, width: side, kernel: conv.kernelSize)
    let out = shape.outHeight * shape.outWidth, rows = conv.inChannels * conv.kernelSize * conv.kernelSize
    let xs = rng.normals(n * conv.inChannels * side * side), dys = rng.normals(n * conv.outChannels * out)
    let xt = try Tensor(shape: [n, conv.inChannels, side, side], scalars: xs)
    let dyt = try Tensor(shape: [n, conv.outChannels, shape.outHeight, shape.outWidth], scalars: dys)
    let w = conv.weight.value.scalars, b = conv.bias?.value.scalars
    let flops = Double(2 * n * conv.outChannels * out * rows)
    // the naive loops on one sample, scaled to the batch
    var one = shape
    one.n = 1
    let xr = Array(xs[..<(conv.inChannels * side * side)]), dyr = Array(dys[..<(conv.outChannels * out)])
    conv.train()
    try bench.run(names[0], group: "conv", metric: .flops(flops),
                  reference: { blackHole(ConvolutionReference.conv2dForward(xr, one, weight: w, bias: b, outChannels: conv.outChannels)) },
                  referenceRows: (1, n),
                  fast: { blackHole(try conv.forward(xt)) },
                  limit: {
                      // Y (C', N·L) = W (C', rows) · col (rows, N·L) as one sgemm
                      let t = bench.roofline.sgemmTime(transA: false, transB: false, m: conv.outChannels, n: n * out, k: rows, beta: 0)
                      return Limit(kind: bench.roofline.productName, boundTime: t, details: [("gemm_flops", flops), ("sgemm_GFLOPs", flops / t / 1e9)])
                  },
                  check: {
                      let y = try conv.forward(xt)
                      let want = ConvolutionReference.conv2dForward(xs, shape, weight: w, bias: b, outChannels: conv.outChannels)
                      return Check.all([("y", compareToReference(y.scalars, want, rtol: 1e-4, atol: 1e-4))])
                  })
    _ = try conv.forward(xt)
    try bench.run(names[1], group: "conv", metric: .flops(2 * flops),
                  reference: { blackHole(ConvolutionReference.conv2dBackward(gradOutput: dyr, x: xr, one, weight: w,
                                                                             outChannels: conv.outChannels).input) },
                  referenceRows: (1, n),
                  fast: { conv.weight.zeroGrad(); conv.bias?.zeroGrad(); blackHole(try conv.backward(dyt, needsInputGradient: true)) },
                  limit: {
                      // dW (C', rows) = dY (C', N·L) · colᵀ and dcol (rows, N·L) = Wᵀ · dY as single sgemms
                      let t = bench.roofline.sgemmTime(transA: false, transB: true, m: conv.outChannels, n: rows, k: n * out, beta: 0)
                          + bench.roofline.sgemmTime(transA: true, transB: false, m: rows, n: n * out, k: conv.outChannels, beta: 0)
                      return Limit(kind: "\(bench.roofline.productName) (2 GEMMs)", boundTime: t, details: [("gemm_flops", 2 * flops), ("sgemm_GFLOPs", 2 * flops / t / 1e9)])
                  },
                  check: {
                      conv.weight.zeroGrad(); conv.bias?.zeroGrad()
                      let dx = try conv.backward(dyt, needsInputGradient: true)!
                      let want = ConvolutionReference.conv2dBackward(gradOutput: dys, x: xs, shape, weight: w, outChannels: conv.outChannels)
                      let sumTol = 1e-4 * Double(n * out).squareRoot()   // dW, db sum N·L terms
                      var parts = [("dx", compareToReference(dx.scalars, want.input, rtol: 1e-4, atol: 1e-4)),
                                   ("dW", compareToReference(conv.weight.grad.scalars, want.weight, rtol: 1e-4, atol: sumTol))]
                      if let bias = conv.bias { parts.append(("db", compareToReference(bias.grad.scalars, want.bias, rtol: 1e-4, atol: sumTol))) }
                      return Check.all(parts)
                  })
}

/// `cnn.step N=…`: forward, cross-entropy, zeroGrad, backward, SGD step.
private func cnnStepCase(_ bench: Bench, net: CNN, x: Tensor, rng: inout ReferenceRandom) throws {
    let n = x.shape[0]
    let name = "cnn.step N=\(n)"
    guard bench.wants(name) else { return }
    let labels = (0..<n).map { _ in Int32(rng.next() % UInt64(net.architecture.classes)) }
    let sgd = try SGD(parameters: net.parameters(), learningRate: 0.01, momentum: 0.9)
    let loss = CrossEntropyLoss()
    net.train()
    func step() throws {
        let logits = try net.forward(x)
        blackHole(try loss.forward(logits: logits, labels: labels))
        sgd.zeroGrad()
        _ = try net.backward(try loss.backward(), needsInputGradient: false)
        sgd.step()
    }
    try bench.run(name, group: "cnn", metric: .samples(n), reference: nil,
                  fast: step,
                  limit: { cnnGemmBound(bench.roofline, net: net, batch: n, training: true) },
                  check: {
                      // the step's forward (batch statistics) against the naive network
                      let logits = try net.forward(x).scalars
                      let want = referenceForward(net, x.scalars, batch: n, training: true)
                      // and no heap allocation in a step once the shapes have been seen: checked in optimized
                      // builds with the counter linked in (unoptimized code boxes closures and copies arrays)
                      #if DEBUG
                      let enforced = false
                      #else
                      let enforced = bnk_malloc_counter_active() != 0
                      #endif
                      try step()
                      let before = bnk_malloc_count()
                      try step()
                      let allocations = bnk_malloc_count() - before
                      return Check.all([("train logits", compareToReference(logits, want, rtol: 1e-3, atol: 1e-3)),
                                        ("allocations per step", (!enforced || allocations == 0, "\(allocations) allocations"))])
                  })
}

/// `cnn.inference N=…` (eval mode) and `cnn.inference-folded N=…` (BatchNorm folded away).
private func cnnInferenceCases(_ bench: Bench, sizes: ConvolutionSizes, x: Tensor) throws {
    let n = x.shape[0]
    let names = ["cnn.inference N=\(n)", "cnn.inference-folded N=\(n)"]
    guard names.contains(where: bench.wants) else { return }
    let net = try CNN(sizes.architecture, seed: 15)
    // running statistics from a few training forwards, so folding has something to fold
    for _ in 0..<3 { _ = try net.forward(x) }
    net.eval()
    let folded = try net.foldingBatchNorm()
    let perSample = x.count / n
    let xr = Array(x.scalars[..<(2 * perSample)])
    for (name, model) in zip(names, [net, folded]) {
        try bench.run(name, group: "cnn", metric: .samples(n),
                      reference: { blackHole(referenceForward(model, xr, batch: 2, training: false)) },
                      referenceRows: (2, n),
                      fast: { blackHole(try model.forward(x)) },
                      limit: { cnnGemmBound(bench.roofline, net: model, batch: n, training: false) },
                      check: {
                          let logits = try model.forward(x).scalars
                          let naive = referenceForward(net, x.scalars, batch: n, training: false)
                          // folded: equal to the unfolded eval logits within 1e-5 (the library's test); both near the naive network
                          let unfolded = try net.forward(x).scalars
                          return Check.all([("logits", compareToReference(logits, naive, rtol: 1e-4, atol: 1e-4)),
                                            ("vs unfolded", compareToReference(logits, unfolded, rtol: 1e-5, atol: 1e-5))])
                      })
    }
}

/// The matrix products of one CNN step (`training`: forward, dW and dX of
/// every convolution and Linear but the first convolution's dX) or of its
/// inference, each as one plain sgemm over the whole batch: their time and
/// flops — the "fraction of the step's GEMM FLOPs at the measured rate".
func cnnGemmBound(_ roofline: Roofline, net: CNN, batch n: Int, training: Bool) -> Limit {
    var t = 0.0, flops = 0.0, side = net.architecture.imageSize, first = true
    func gemm(_ transA: Bool, _ transB: Bool, _ m: Int, _ cols: Int, _ k: Int) {
        t += roofline.sgemmTime(transA: transA, transB: transB, m: m, n: cols, k: k, beta: 0)
        flops += Double(2 * m * cols * k)
    }
    for layer in net.features.layers + net.classifier.layers {
        if let conv = layer as? Conv2d {
            let out = side - conv.kernelSize + 1, rows = conv.inChannels * conv.kernelSize * conv.kernelSize
            let columns = n * out * out
            gemm(false, false, conv.outChannels, columns, rows)                // Y = W·col
            if training {
                gemm(false, true, conv.outChannels, rows, columns)             // dW = dY·colᵀ
                if !first { gemm(true, false, rows, columns, conv.outChannels) }   // dcol = Wᵀ·dY
            }
            side = out / 2
            first = false
        } else if let linear = layer as? Linear {
            gemm(false, true, n, linear.outFeatures, linear.inFeatures)        // Y = X·Wᵀ
            if training {
                gemm(true, false, linear.outFeatures, linear.inFeatures, n)    // dW = dYᵀ·X
                gemm(false, false, n, linear.inFeatures, linear.outFeatures)   // dX = dY·W
            }
        }
    }
    return Limit(kind: training ? "\(roofline.productName) (step)" : "\(roofline.productName) (forward)", boundTime: t,
                 details: [("gemm_flops", flops), ("sgemm_GFLOPs", flops / t / 1e9)])
}

/// The CNN's logits computed layer by layer with the naive Double loops.
/// x: `(batch, C·H·W)`; `training` uses batch statistics in the BatchNorms.
func referenceForward(_ net: CNN, _ x: [Float], batch n: Int, training: Bool) -> [Double] {
    let a = net.architecture
    var values = x.map(Double.init)
    var shape = [n, a.inChannels, a.imageSize, a.imageSize]
    func doubles(_ t: Tensor?) -> [Double] { t?.scalars.map(Double.init) ?? [] }
    for layer in net.features.layers + net.classifier.layers {
        switch layer {
        case let conv as Conv2d:
            let s = ConvolutionReference.Shape(n: n, channels: shape[1], height: shape[2], width: shape[3], kernel: conv.kernelSize,
                                               stride: conv.stride, padding: conv.padding, dilation: conv.dilation)
            values = ConvolutionReference.conv2dForward(values, s, weight: doubles(conv.weight.value), bias: conv.bias.map { doubles($0.value) },
                                                        outChannels: conv.outChannels, groups: conv.groups)
            shape = [n, conv.outChannels, s.outHeight, s.outWidth]
        case let norm as _BatchNorm:
            let c = shape[1], l = shape.dropFirst(2).reduce(1, *)
            let gamma = doubles(norm.weight?.value), beta = doubles(norm.bias?.value)
            values = training
                ? BatchNormReference.forwardTrain(values, n: n, c: c, l: l, gamma: gamma, beta: beta, eps: Double(norm.eps))
                : BatchNormReference.forwardEval(values, n: n, c: c, l: l, runningMean: doubles(norm.runningMean),
                                                 runningVar: doubles(norm.runningVar), gamma: gamma, beta: beta, eps: Double(norm.eps))
        case is ReLU:
            values = BatchNormReference.relu(values)
        case let pool as MaxPool2d:
            let s = ConvolutionReference.Shape(n: n, channels: shape[1], height: shape[2], width: shape[3], kernel: pool.kernelSize,
                                               stride: pool.stride, padding: pool.padding)
            values = ConvolutionReference.maxPool2d(values, s, gradOutput: [Double](repeating: 0, count: n * shape[1] * s.outHeight * s.outWidth)).output
            shape = [n, shape[1], s.outHeight, s.outWidth]
        case is Flatten:
            shape = [n, shape.dropFirst().reduce(1, *)]
        case let linear as Linear:
            values = BatchNormReference.linearForward(values, n: n, inFeatures: linear.inFeatures, weight: doubles(linear.weight.value),
                                                      bias: linear.bias.map { doubles($0.value) }, outFeatures: linear.outFeatures)
            shape = [n, linear.outFeatures]
        default:
            preconditionFailure("referenceForward: unexpected layer \(type(of: layer))")
        }
    }
    return values
}
