// Pooling over (N, C, H, W): every channel of every sample on its own, a
// square window sliding with the geometry of `Conv2d+Geometry.swift`
// (dilation 1, ceil_mode false, as PyTorch's defaults).

/// Checks a pooling window's arguments as PyTorch does (kernel, stride ≥ 1,
/// 0 ≤ padding ≤ kernel/2) and returns the stride, `kernelSize` when nil.
private func _poolingStride(kernelSize: Int, stride: Int?, padding: Int) throws -> Int {
    try _requireAtLeast(1, "kernelSize", kernelSize)
    try _requireAtLeast(1, "stride", stride ?? kernelSize)
    try _requireAtLeast(0, "padding", padding)
    guard padding <= kernelSize / 2 else {
        throw BatchNormKitError.invalidArgument(name: "padding", value: "\(padding)",
                                                requirement: "must be at most half the kernel size (\(kernelSize / 2))")
    }
    return stride ?? kernelSize
}

/// Max pooling, `torch.nn.MaxPool2d(kernel_size, stride=None, padding=0)`:
///
///     y[n, c, i, j] = max_{u,v < k} x[n, c, i·s + u − p, j·s + v − p]
///
/// over the pixels inside the image (padding never wins). Input
/// `(N, C, H, W)`, output `(N, C, H_out, W_out)`,
/// `H_out = ⌊(H + 2p − k)/s⌋ + 1`. `stride` defaults to `kernelSize`;
/// `padding` must be at most `kernelSize/2` (PyTorch's rule). Backward sends
/// each output's gradient to the first maximum of its window (PyTorch's
/// choice on ties); a NaN in a window is its maximum, as in PyTorch.
public final class MaxPool2d: Layer {
    /// k, the side of the window.
    public let kernelSize: Int
    /// s, the step between windows (default k).
    public let stride: Int
    /// p, implicit −∞ added on every side (default 0).
    public let padding: Int
    public private(set) var isTraining = true

    private var output: Tensor?        // (N, C, H_out, W_out)
    private var gradInput: Tensor?     // (N, C, H, W)
    private var winners: UnsafeMutablePointer<Int32>  // [N·C·H_out·W_out]: index in its input plane of each maximum
    private var winnerCapacity = 0
    private var geometry: _WindowGeometry?

    /// - Throws: `invalidArgument` for kernel or stride below 1, a negative
    ///   padding, or one above `kernelSize/2`.
    public init(kernelSize: Int, stride: Int? = nil, padding: Int = 0) throws {
        self.stride = try _poolingStride(kernelSize: kernelSize, stride: stride, padding: padding)
        self.kernelSize = kernelSize
        self.padding = padding
        winners = .allocate(capacity: 1)
    }

    deinit { winners.deallocate() }

    public func setTraining(_ training: Bool) { isTraining = training }

    var context: String { "MaxPool2d(kernel \(kernelSize), stride \(stride), padding \(padding))" }

    /// y `(N, C, H_out, W_out)` from x `(N, C, H, W)`.
    /// - Throws: `shapeMismatch` for another rank or an image smaller than
    ///   the window after padding; `emptyBatch` for N = 0.
    public func forward(_ x: Tensor) throws -> Tensor {
        let g = try _WindowGeometry(input: x.shape, channels: nil, kernel: kernelSize, stride: stride,
                                    padding: padding, dilation: 1, context: context)
        let y = output._reuse(g.n, g.channels, g.outHeight, g.outWidth)
        if y.count > winnerCapacity {
            winners.deallocate()
            winners = .allocate(capacity: y.count)
            winnerCapacity = y.count
        }
        let k = kernelSize
        for plane in 0..<(g.n * g.channels) {
            let src = x._pointer + plane * g.inPlane
            let dst = y._pointer + plane * g.outPlane, won = winners + plane * g.outPlane
            for i in 0..<g.outHeight {
                let top = i * stride - padding
                let rows = max(0, top)..<min(g.height, top + k)
                for j in 0..<g.outWidth {
                    let left = j * stride - padding
                    var best = -Float.infinity, at = rows.lowerBound * g.width + max(0, left)
                    for r in rows {
                        for c in max(0, left)..<min(g.width, left + k) {
                            let v = src[r * g.width + c]
                            if v > best || v.isNaN { best = v; at = r * g.width + c; if v.isNaN { break } }
                        }
                        if best.isNaN { break }
                    }
                    dst[i * g.outWidth + j] = best
                    won[i * g.outWidth + j] = Int32(at)
                }
            }
        }
        geometry = g
        return y
    }

    /// dx `(N, C, H, W)`: each output's gradient added to its window's maximum, zero elsewhere.
    public func backward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? {
        _ = try _checkGradient(dy, like: output, context: context)
        guard needsInputGradient, let g = geometry else { return nil }
        let dx = gradInput._reuse(g.n, g.channels, g.height, g.width)
        dx.fill(0)
        for plane in 0..<(g.n * g.channels) {
            let grad = dy._pointer + plane * g.outPlane, won = winners + plane * g.outPlane
            let target = dx._pointer + plane * g.inPlane
            for o in 0..<g.outPlane { target[Int(won[o])] += grad[o] }
        }
        return dx
    }
}

/// Average pooling, `torch.nn.AvgPool2d(kernel_size, stride=None, padding=0,
/// count_include_pad=True)`:
///
///     y[n, c, i, j] = Σ_{u,v < k} x[n, c, i·s + u − p, j·s + v − p] / divisor
///
/// with padding read as 0 and divisor k² (`countIncludePad`, the default) or
/// the number of pixels of the window inside the image. Shapes, `stride`
/// default and the padding rule as ``MaxPool2d``. Backward spreads each
/// output's gradient over its window, divided by the same divisor.
public final class AvgPool2d: Layer {
    /// k, the side of the window.
    public let kernelSize: Int
    /// s, the step between windows (default k).
    public let stride: Int
    /// p, zeros added on every side (default 0).
    public let padding: Int
    /// Whether padding zeros count in the divisor (default true, as PyTorch).
    public let countIncludePad: Bool
    public private(set) var isTraining = true

    private var output: Tensor?
    private var gradInput: Tensor?
    private var geometry: _WindowGeometry?

    /// - Throws: `invalidArgument` as ``MaxPool2d/init(kernelSize:stride:padding:)``.
    public init(kernelSize: Int, stride: Int? = nil, padding: Int = 0, countIncludePad: Bool = true) throws {
        self.stride = try _poolingStride(kernelSize: kernelSize, stride: stride, padding: padding)
        self.kernelSize = kernelSize
        self.padding = padding
        self.countIncludePad = countIncludePad
    }

    public func setTraining(_ training: Bool) { isTraining = training }

    var context: String { "AvgPool2d(kernel \(kernelSize), stride \(stride), padding \(padding))" }

    /// The rows and columns of window (i, j) inside the image, and its divisor.
    @inline(__always)
    private func window(_ i: Int, _ j: Int, _ g: _WindowGeometry) -> (rows: Range<Int>, cols: Range<Int>, divisor: Float) {
        let top = i * stride - padding, left = j * stride - padding
        let rows = max(0, top)..<min(g.height, top + kernelSize), cols = max(0, left)..<min(g.width, left + kernelSize)
        return (rows, cols, Float(countIncludePad ? kernelSize * kernelSize : rows.count * cols.count))
    }

    /// y `(N, C, H_out, W_out)` from x `(N, C, H, W)`; throws as ``MaxPool2d/forward(_:)``.
    public func forward(_ x: Tensor) throws -> Tensor {
        let g = try _WindowGeometry(input: x.shape, channels: nil, kernel: kernelSize, stride: stride,
                                    padding: padding, dilation: 1, context: context)
        let y = output._reuse(g.n, g.channels, g.outHeight, g.outWidth)
        for plane in 0..<(g.n * g.channels) {
            let src = x._pointer + plane * g.inPlane, dst = y._pointer + plane * g.outPlane
            for i in 0..<g.outHeight {
                for j in 0..<g.outWidth {
                    let w = window(i, j, g)
                    var sum: Float = 0
                    for r in w.rows { for c in w.cols { sum += src[r * g.width + c] } }
                    dst[i * g.outWidth + j] = sum / w.divisor
                }
            }
        }
        geometry = g
        return y
    }

    /// dx `(N, C, H, W)`: dy / divisor added to every pixel of each window.
    public func backward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? {
        _ = try _checkGradient(dy, like: output, context: context)
        guard needsInputGradient, let g = geometry else { return nil }
        let dx = gradInput._reuse(g.n, g.channels, g.height, g.width)
        dx.fill(0)
        for plane in 0..<(g.n * g.channels) {
            let grad = dy._pointer + plane * g.outPlane, target = dx._pointer + plane * g.inPlane
            for i in 0..<g.outHeight {
                for j in 0..<g.outWidth {
                    let w = window(i, j, g)
                    let share = grad[i * g.outWidth + j] / w.divisor
                    for r in w.rows { for c in w.cols { target[r * g.width + c] += share } }
                }
            }
        }
        return dx
    }
}

/// Adaptive average pooling, `torch.nn.AdaptiveAvgPool2d(output_size)`:
/// output cell (i, j) of an `outputSize × outputSize` grid averages input
/// rows ⌊i·H/out⌋ ..< ⌈(i+1)·H/out⌉ (columns likewise). `AdaptiveAvgPool2d(1)`
/// is global average pooling: `(N, C, H, W)` → `(N, C, 1, 1)`.
public final class AdaptiveAvgPool2d: Layer {
    /// The output's height and width.
    public let outputSize: Int
    public private(set) var isTraining = true

    private var output: Tensor?
    private var gradInput: Tensor?
    private var inputShape = (n: 0, c: 0, h: 0, w: 0)

    /// - Throws: `invalidArgument` for `outputSize < 1`.
    public init(_ outputSize: Int) throws {
        try _requireAtLeast(1, "outputSize", outputSize)
        self.outputSize = outputSize
    }

    public func setTraining(_ training: Bool) { isTraining = training }

    var context: String { "AdaptiveAvgPool2d(\(outputSize))" }

    /// Input rows (or columns) of output cell `i` along an axis of `size`.
    @inline(__always)
    private func cells(_ i: Int, _ size: Int) -> Range<Int> {
        (i * size / outputSize)..<(((i + 1) * size + outputSize - 1) / outputSize)
    }

    /// y `(N, C, out, out)` from x `(N, C, H, W)`.
    /// - Throws: `shapeMismatch` for another rank; `emptyBatch` for N = 0.
    public func forward(_ x: Tensor) throws -> Tensor {
        guard x.shape.count == 4 else {
            throw BatchNormKitError.shapeMismatch(context: context, expected: "(N, C, H, W)", got: x.shape)
        }
        guard x.shape[0] > 0 else { throw BatchNormKitError.emptyBatch(context: context) }
        guard x.shape[2] > 0, x.shape[3] > 0 else {
            throw BatchNormKitError.shapeMismatch(context: context, expected: "(N, C, H, W) with H, W ≥ 1", got: x.shape)
        }
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let y = output._reuse(n, c, outputSize, outputSize)
        for plane in 0..<(n * c) {
            let src = x._pointer + plane * h * w, dst = y._pointer + plane * outputSize * outputSize
            for i in 0..<outputSize {
                let rows = cells(i, h)
                for j in 0..<outputSize {
                    let cols = cells(j, w)
                    var sum: Float = 0
                    for r in rows { sum += _sum(src + r * w + cols.lowerBound, count: cols.count) }
                    dst[i * outputSize + j] = sum / Float(rows.count * cols.count)
                }
            }
        }
        inputShape = (n, c, h, w)
        return y
    }

    /// dx `(N, C, H, W)`: each cell's gradient spread evenly over its input pixels.
    public func backward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? {
        _ = try _checkGradient(dy, like: output, context: context)
        guard needsInputGradient else { return nil }
        let (n, c, h, w) = inputShape
        let dx = gradInput._reuse(n, c, h, w)
        dx.fill(0)
        for plane in 0..<(n * c) {
            let grad = dy._pointer + plane * outputSize * outputSize, target = dx._pointer + plane * h * w
            for i in 0..<outputSize {
                let rows = cells(i, h)
                for j in 0..<outputSize {
                    let cols = cells(j, w)
                    let share = grad[i * outputSize + j] / Float(rows.count * cols.count)
                    for r in rows { for q in cols { target[r * w + q] += share } }
                }
            }
        }
        return dx
    }
}
