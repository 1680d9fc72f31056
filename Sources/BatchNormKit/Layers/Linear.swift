import CBatchNormKitBLAS

/// A fully connected layer, `torch.nn.Linear`: Y = X·Wᵀ + b.
///
/// - Input `(N, inFeatures)`, output `(N, outFeatures)`.
/// - `weight` `(outFeatures, inFeatures)`, `bias` `[outFeatures]`.
/// - Init as PyTorch: Kaiming-uniform with a = √5, i.e. W, b ~ U(−1/√in, 1/√in).
///
/// Forward and both products of backward run on `MatrixMultiplication`'s
/// backend (OpenBLAS `sgemm`, or 16-lane tiles where OpenBLAS uses 8 lanes).
public final class Linear: Layer {
    /// Features per input row.
    public let inFeatures: Int
    /// Features per output row.
    public let outFeatures: Int
    /// `(outFeatures, inFeatures)`
    public let weight: Parameter
    /// `[outFeatures]`, or nil for `bias: false`.
    public let bias: Parameter?
    public private(set) var isTraining = true

    private var input: Tensor?       // (N, in), kept for dW
    private var output: Tensor?      // (N, out)
    private var gradInput: Tensor?   // (N, in)

    /// A layer with PyTorch's default initialization drawn from `generator`.
    public init<G: RandomNumberGenerator>(
        inFeatures: Int, outFeatures: Int, bias: Bool = true, generator: inout G
    ) throws {
        guard inFeatures > 0 else {
            throw BatchNormKitError.invalidArgument(name: "inFeatures", value: "\(inFeatures)", requirement: "must be ≥ 1")
        }
        guard outFeatures > 0 else {
            throw BatchNormKitError.invalidArgument(name: "outFeatures", value: "\(outFeatures)", requirement: "must be ≥ 1")
        }
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        // kaiming_uniform_(a: √5): gain √(2/(1+5)), bound gain·√(3/fan_in) = 1/√fan_in
        let bound = 1 / Float(inFeatures).squareRoot()
        let w = Tensor(_validShape: [outFeatures, inFeatures])
        w.withUnsafeMutableBufferPointer { for i in $0.indices { $0[i] = Float.random(in: -bound..<bound, using: &generator) } }
        weight = Parameter(w)
        if bias {
            let b = Tensor(_validShape: [outFeatures])
            b.withUnsafeMutableBufferPointer { for i in $0.indices { $0[i] = Float.random(in: -bound..<bound, using: &generator) } }
            self.bias = Parameter(b)
        } else {
            self.bias = nil
        }
    }

    /// A layer with PyTorch's default initialization from a seed.
    public convenience init(inFeatures: Int, outFeatures: Int, bias: Bool = true, seed: UInt64 = 0) throws {
        var g = SplitMix64(seed: seed)
        try self.init(inFeatures: inFeatures, outFeatures: outFeatures, bias: bias, generator: &g)
    }

    public func setTraining(_ training: Bool) { isTraining = training }

    // MARK: - Forward

    /// Y `(N, out)` = X `(N, in)` · Wᵀ + b.
    public func forward(_ x: Tensor) throws -> Tensor {
        try _checkMatrix(x, features: inFeatures, context: "Linear(\(inFeatures)→\(outFeatures))")
        let n = x.shape[0]
        let y = output._reuse(rows: n, columns: outFeatures)
        input = x
        if let bias {
            // broadcast b into every row, then accumulate X·Wᵀ on top (beta = 1)
            let b = bias.value._pointer, out = y._pointer
            for row in 0..<n { (out + row * outFeatures).update(from: b, count: outFeatures) }
        }
        MatrixMultiplication._multiply(transposeA: false, transposeB: true, m: n, n: outFeatures, k: inFeatures,
                                       a: x._pointer, lda: inFeatures, b: weight.value._pointer, ldb: inFeatures,
                                       accumulate: bias != nil, c: y._pointer, ldc: outFeatures)
        return y
    }

    // MARK: - Backward

    /// dW += dYᵀ·X, db += Σ_rows dY, and dX = dY·W when `needsInputGradient`.
    /// gradOutput: `(N, out)` → `(N, in)`.
    public func backward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? {
        _ = try _checkGradient(dy, like: output, context: "Linear(\(inFeatures)→\(outFeatures))")
        guard let x = input else { return nil }
        let n = dy.shape[0]
        // dW (out, in) += dYᵀ (out, N) · X (N, in); β = 0 right after zeroGrad
        let dW = weight._gradForUpdate()
        MatrixMultiplication._multiply(transposeA: true, transposeB: false, m: outFeatures, n: inFeatures, k: n,
                                       a: dy._pointer, lda: outFeatures, b: x._pointer, ldb: inFeatures,
                                       accumulate: dW.accumulate, c: dW.buffer._pointer, ldc: inFeatures)
        if let bias {
            let db = bias._gradForUpdate()
            if !db.accumulate { db.buffer.fill(0) }
            _addColumnSums(dy._pointer, rows: n, columns: outFeatures, into: db.buffer._pointer)
        }
        guard needsInputGradient else { return nil }
        // dX (N, in) = dY (N, out) · W (out, in)
        let dx = gradInput._reuse(rows: n, columns: inFeatures)
        MatrixMultiplication._multiply(transposeA: false, transposeB: false, m: n, n: inFeatures, k: outFeatures,
                                       a: dy._pointer, lda: outFeatures, b: weight.value._pointer, ldb: inFeatures,
                                       accumulate: false, c: dx._pointer, ldc: inFeatures)
        return dx
    }

    /// `weight` `(out, in)` and `bias` `[out]` under `prefix`.
    public func namedStateEntries(prefix: String) -> [(name: String, entry: StateEntry)] {
        var entries: [(name: String, entry: StateEntry)] = [(prefix + "weight", .parameter(weight))]
        if let bias { entries.append((prefix + "bias", .parameter(bias))) }
        return entries
    }
}

/// sums[j] += Σ_rows m[row, j], vectorised across columns. m: `(rows, columns)`.
func _addColumnSums(_ m: UnsafePointer<Float>, rows: Int, columns: Int, into sums: UnsafeMutablePointer<Float>) {
    let vectorEnd = columns - columns % 8
    var j = 0
    while j < vectorEnd {
        var acc = UnsafeRawPointer(sums + j).loadUnaligned(as: SIMD8<Float>.self)
        for row in 0..<rows { acc += UnsafeRawPointer(m + row * columns + j).loadUnaligned(as: SIMD8<Float>.self) }
        UnsafeMutableRawPointer(sums + j).storeBytes(of: acc, as: SIMD8<Float>.self)
        j += 8
    }
    while j < columns {
        var acc = sums[j]
        for row in 0..<rows { acc += m[row * columns + j] }
        sums[j] = acc
        j += 1
    }
}
