import CBatchNormKitBLAS

/// A 2-D convolution, `torch.nn.Conv2d` (cross-correlation, as PyTorch):
///
///     y[n, o, i, j] = b[o] + Σ_{c ∈ group(o)} Σ_{u,v < k} W[o, c, u, v] · x[n, c, i·s + u·d − p, j·s + v·d − p]
///
/// - Input `(N, inChannels, H, W)`, output `(N, outChannels, H_out, W_out)`
///   with `H_out = ⌊(H + 2p − d·(k − 1) − 1) / s⌋ + 1` (likewise W_out).
/// - `weight` `(outChannels, inChannels/groups, k, k)`, `bias` `[outChannels]`.
/// - Square kernels, strides, paddings and dilations (one Int each); zero padding.
/// - `groups` splits the channels into independent convolutions: output
///   channels `g·out/G ..< (g+1)·out/G` see input channels `g·in/G ..< (g+1)·in/G`.
/// - Init as PyTorch: `kaiming_uniform_(a = √5)` on the weight, i.e.
///   W, b ~ U(−1/√fan_in, 1/√fan_in) with fan_in = (inChannels/groups)·k·k.
///
/// Forward is im2col (see `Conv2d+Columns.swift`) then one `sgemm` per sample
/// and group; backward is dW += dY·colᵀ, db += Σ dY and dX = col2im(Wᵀ·dY).
/// In training mode the column matrices of the whole batch are kept for dW
/// (a workspace of N·inChannels·k·k·H_out·W_out floats, owned by the layer
/// and reused: no allocation per step once a shape has been seen); in eval
/// mode one sample's is kept and backward recomputes the others.
public final class Conv2d: Layer {
    /// C_in, channels of the input.
    public let inChannels: Int
    /// C_out, channels of the output.
    public let outChannels: Int
    /// k, the side of the square kernel.
    public let kernelSize: Int
    /// s, the step between windows (default 1).
    public let stride: Int
    /// p, zeros added on every side (default 0).
    public let padding: Int
    /// d, the spacing between kernel taps (default 1).
    public let dilation: Int
    /// G, the number of channel groups (default 1).
    public let groups: Int
    /// `(outChannels, inChannels/groups, k, k)`
    public let weight: Parameter
    /// `[outChannels]`, or nil for `bias: false`.
    public let bias: Parameter?
    public private(set) var isTraining = true

    private var input: Tensor?          // (N, C_in, H, W), kept for backward
    private var output: Tensor?         // (N, C_out, H_out, W_out)
    private var gradInput: Tensor?      // (N, C_in, H, W)
    private var columns: Tensor?        // (N or 1, C_in·k·k, L): im2col of the batch (training) or one sample
    private var gradColumns: Tensor?    // (C_in·k·k, L): one sample's column gradient
    private var keptAllColumns = false  // whether `columns` holds every sample of the last forward
    private var geometry: _WindowGeometry?

    /// A layer with PyTorch's default initialization drawn from `generator`.
    ///
    /// - Throws: `invalidArgument` for a size below 1 (padding below 0), or
    ///   channel counts not divisible by `groups`.
    public init<G: RandomNumberGenerator>(
        inChannels: Int, outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
        dilation: Int = 1, groups: Int = 1, bias: Bool = true, generator: inout G
    ) throws {
        try _requireAtLeast(1, "inChannels", inChannels)
        try _requireAtLeast(1, "outChannels", outChannels)
        try _requireAtLeast(1, "kernelSize", kernelSize)
        try _requireAtLeast(1, "stride", stride)
        try _requireAtLeast(0, "padding", padding)
        try _requireAtLeast(1, "dilation", dilation)
        try _requireAtLeast(1, "groups", groups)
        guard inChannels % groups == 0, outChannels % groups == 0 else {
            throw BatchNormKitError.invalidArgument(
                name: "groups", value: "\(groups)",
                requirement: "must divide inChannels (\(inChannels)) and outChannels (\(outChannels))")
        }
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernelSize = kernelSize
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.groups = groups
        // kaiming_uniform_(a: √5): bound gain·√(3/fan_in) with gain √(2/(1+5)), = 1/√fan_in; bias the same bound
        let fanIn = inChannels / groups * kernelSize * kernelSize
        let bound = 1 / Float(fanIn).squareRoot()
        let w = Tensor(_validShape: [outChannels, inChannels / groups, kernelSize, kernelSize])
        w.withUnsafeMutableBufferPointer { for i in $0.indices { $0[i] = Float.random(in: -bound..<bound, using: &generator) } }
        weight = Parameter(w)
        if bias {
            let b = Tensor(_validShape: [outChannels])
            b.withUnsafeMutableBufferPointer { for i in $0.indices { $0[i] = Float.random(in: -bound..<bound, using: &generator) } }
            self.bias = Parameter(b)
        } else {
            self.bias = nil
        }
    }

    /// A layer with PyTorch's default initialization from a seed.
    public convenience init(inChannels: Int, outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                            dilation: Int = 1, groups: Int = 1, bias: Bool = true, seed: UInt64 = 0) throws {
        var g = SplitMix64(seed: seed)
        try self.init(inChannels: inChannels, outChannels: outChannels, kernelSize: kernelSize, stride: stride,
                      padding: padding, dilation: dilation, groups: groups, bias: bias, generator: &g)
    }

    public func setTraining(_ training: Bool) { isTraining = training }

    /// The layer as messages name it, e.g. `Conv2d(1→32, kernel 3, stride 1, padding 0, dilation 1)`.
    var context: String {
        "Conv2d(\(inChannels)→\(outChannels), kernel \(kernelSize), stride \(stride), padding \(padding), dilation \(dilation)"
            + (groups == 1 ? ")" : ", groups \(groups))")
    }

    /// Rows of one group's block of a column matrix, (C_in/G)·k·k.
    private var groupRows: Int { inChannels / groups * kernelSize * kernelSize }

    // MARK: - Forward

    /// y `(N, C_out, H_out, W_out)` from x `(N, C_in, H, W)`.
    ///
    /// - Throws: `shapeMismatch` for another rank or an image too small for
    ///   the window (the message gives the input size, kernel, stride and
    ///   padding); `featureCountMismatch` for the wrong channel count;
    ///   `emptyBatch` for N = 0.
    public func forward(_ x: Tensor) throws -> Tensor {
        let g = try _WindowGeometry(input: x.shape, channels: inChannels, kernel: kernelSize, stride: stride,
                                    padding: padding, dilation: dilation, context: context)
        let n = g.n, l = g.outPlane, rowsPerGroup = groupRows, outPerGroup = outChannels / groups
        let y = output._reuse(n, outChannels, g.outHeight, g.outWidth)
        let sampleColumns = inChannels * kernelSize * kernelSize * l
        keptAllColumns = isTraining
        let col = columns._reuse(rows: keptAllColumns ? n : 1, columns: sampleColumns)
        for sample in 0..<n {
            let ySample = y._pointer + sample * outChannels * l
            let colSample = col._pointer + (keptAllColumns ? sample * sampleColumns : 0)
            _im2col(x._pointer + sample * inChannels * g.inPlane, g, into: colSample)
            if let bias {
                // every output plane starts as its bias; sgemm adds W·col on top (β = 1)
                for o in 0..<outChannels { (ySample + o * l).update(repeating: bias.value._pointer[o], count: l) }
            }
            for group in 0..<groups {
                // Y_g (C_out/G, L) = W_g (C_out/G, rows) · col_g (rows, L)
                MatrixMultiplication._multiply(transposeA: false, transposeB: false, m: outPerGroup, n: l, k: rowsPerGroup,
                                               a: weight.value._pointer + group * outPerGroup * rowsPerGroup, lda: rowsPerGroup,
                                               b: colSample + group * rowsPerGroup * l, ldb: l,
                                               accumulate: bias != nil, c: ySample + group * outPerGroup * l, ldc: l)
            }
        }
        input = x
        geometry = g
        return y
    }

    // MARK: - Backward

    /// dW += Σ_n dY_n·col_nᵀ, db += Σ_{n,i,j} dY, and dX = col2im(Wᵀ·dY) when
    /// `needsInputGradient`. gradOutput: `(N, C_out, H_out, W_out)` → `(N, C_in, H, W)`.
    public func backward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? {
        _ = try _checkGradient(dy, like: output, context: context)
        guard let x = input, let g = geometry, let col = columns else { return nil }
        let n = g.n, l = g.outPlane, rowsPerGroup = groupRows, outPerGroup = outChannels / groups
        let sampleColumns = inChannels * kernelSize * kernelSize * l
        let dW = weight._gradForUpdate()
        let db = bias.map { $0._gradForAccumulation() }
        let dx = needsInputGradient ? gradInput._reuse(sameShapeAs: x) : nil
        let dCol = needsInputGradient ? gradColumns._reuse(rows: inChannels * kernelSize * kernelSize, columns: l) : nil
        for sample in 0..<n {
            let dySample = dy._pointer + sample * outChannels * l
            let colSample: UnsafeMutablePointer<Float>
            if keptAllColumns {
                colSample = col._pointer + sample * sampleColumns
            } else {
                // eval-mode forward kept one sample's columns: rebuild this one's
                colSample = col._pointer
                _im2col(x._pointer + sample * inChannels * g.inPlane, g, into: colSample)
            }
            if let db {
                for o in 0..<outChannels { db[o] += _sum(dySample + o * l, count: l) }
            }
            for group in 0..<groups {
                // dW_g (C_out/G, rows) += dY_g (C_out/G, L) · col_gᵀ (L, rows); β = 0 for the first write after zeroGrad
                let first = sample == 0 && !dW.accumulate
                MatrixMultiplication._multiply(transposeA: false, transposeB: true, m: outPerGroup, n: rowsPerGroup, k: l,
                                               a: dySample + group * outPerGroup * l, lda: l,
                                               b: colSample + group * rowsPerGroup * l, ldb: l,
                                               accumulate: !first, c: dW.buffer._pointer + group * outPerGroup * rowsPerGroup,
                                               ldc: rowsPerGroup)
            }
            guard let dx, let dCol else { continue }
            for group in 0..<groups {
                // dcol_g (rows, L) = W_gᵀ (rows, C_out/G) · dY_g (C_out/G, L)
                MatrixMultiplication._multiply(transposeA: true, transposeB: false, m: rowsPerGroup, n: l, k: outPerGroup,
                                               a: weight.value._pointer + group * outPerGroup * rowsPerGroup, lda: rowsPerGroup,
                                               b: dySample + group * outPerGroup * l, ldb: l,
                                               accumulate: false, c: dCol._pointer + group * rowsPerGroup * l, ldc: l)
            }
            _col2im(dCol._pointer, g, into: dx._pointer + sample * inChannels * g.inPlane)
        }
        return dx
    }

    /// `weight` `(out, in/groups, k, k)` and `bias` `[out]` under `prefix`.
    public func namedStateEntries(prefix: String) -> [(name: String, entry: StateEntry)] {
        var entries: [(name: String, entry: StateEntry)] = [(prefix + "weight", .parameter(weight))]
        if let bias { entries.append((prefix + "bias", .parameter(bias))) }
        return entries
    }
}
