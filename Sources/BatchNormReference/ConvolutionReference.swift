/// Naive twins of the convolution and pooling layers: the definitions
/// written as nested loops over every output pixel and kernel tap, in
/// Double, with no im2col and no matrix product. Layout: row-major
/// `(N, C, H, W)`; square kernels, strides, paddings and dilations.
public enum ConvolutionReference {
    /// The size of an output side: ⌊(size + 2p − d(k − 1) − 1)/s⌋ + 1 (PyTorch's formula).
    public static func outputSize(_ size: Int, kernel: Int, stride: Int, padding: Int, dilation: Int = 1) -> Int {
        (size + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1
    }

    /// The shape of a convolution's or pooling's problem.
    public struct Shape: Sendable {
        public var n, channels, height, width: Int
        public var kernel, stride, padding, dilation: Int
        public init(n: Int, channels: Int, height: Int, width: Int,
                    kernel: Int, stride: Int = 1, padding: Int = 0, dilation: Int = 1) {
            self.n = n; self.channels = channels; self.height = height; self.width = width
            self.kernel = kernel; self.stride = stride; self.padding = padding; self.dilation = dilation
        }
        public var outHeight: Int { ConvolutionReference.outputSize(height, kernel: kernel, stride: stride, padding: padding, dilation: dilation) }
        public var outWidth: Int { ConvolutionReference.outputSize(width, kernel: kernel, stride: stride, padding: padding, dilation: dilation) }

        /// The input row and column tap (u, v) of output pixel (i, j) reads, or nil in the padding.
        func source(_ i: Int, _ j: Int, _ u: Int, _ v: Int) -> (Int, Int)? {
            let r = i * stride + u * dilation - padding, c = j * stride + v * dilation - padding
            return r >= 0 && r < height && c >= 0 && c < width ? (r, c) : nil
        }
    }

    // MARK: - Conv2d

    /// y `(N, outChannels, H_out, W_out)` from x `(N, C, H, W)`, weight
    /// `(outChannels, C/groups, k, k)`, bias `[outChannels]` or nil.
    public static func conv2dForward<T: BinaryFloatingPoint>(
        _ x: [T], _ s: Shape, weight: [T], bias: [T]?, outChannels: Int, groups: Int = 1
    ) -> [Double] {
        let (oh, ow, k) = (s.outHeight, s.outWidth, s.kernel)
        let cg = s.channels / groups, og = outChannels / groups
        var y = [Double](repeating: 0, count: s.n * outChannels * oh * ow)
        for n in 0..<s.n { for o in 0..<outChannels { for i in 0..<oh { for j in 0..<ow {
            var acc = bias.map { Double($0[o]) } ?? 0
            for cl in 0..<cg {
                let c = (o / og) * cg + cl
                for u in 0..<k { for v in 0..<k {
                    guard let (r, q) = s.source(i, j, u, v) else { continue }
                    acc += Double(weight[((o * cg + cl) * k + u) * k + v]) * Double(x[((n * s.channels + c) * s.height + r) * s.width + q])
                } }
            }
            y[((n * outChannels + o) * oh + i) * ow + j] = acc
        } } } }
        return y
    }

    /// dx `(N, C, H, W)`, dW `(outChannels, C/groups, k, k)`, db `[outChannels]`
    /// for upstream gradient dy `(N, outChannels, H_out, W_out)`, by the chain
    /// rule through every term of the forward's sum.
    public static func conv2dBackward<T: BinaryFloatingPoint>(
        gradOutput dy: [T], x: [T], _ s: Shape, weight: [T], outChannels: Int, groups: Int = 1
    ) -> (input: [Double], weight: [Double], bias: [Double]) {
        let (oh, ow, k) = (s.outHeight, s.outWidth, s.kernel)
        let cg = s.channels / groups, og = outChannels / groups
        var dx = [Double](repeating: 0, count: x.count)
        var dw = [Double](repeating: 0, count: weight.count)
        var db = [Double](repeating: 0, count: outChannels)
        for n in 0..<s.n { for o in 0..<outChannels { for i in 0..<oh { for j in 0..<ow {
            let g = Double(dy[((n * outChannels + o) * oh + i) * ow + j])
            db[o] += g
            for cl in 0..<cg {
                let c = (o / og) * cg + cl
                for u in 0..<k { for v in 0..<k {
                    guard let (r, q) = s.source(i, j, u, v) else { continue }
                    let xi = ((n * s.channels + c) * s.height + r) * s.width + q, wi = ((o * cg + cl) * k + u) * k + v
                    dw[wi] += g * Double(x[xi])
                    dx[xi] += g * Double(weight[wi])
                } }
            }
        } } } }
        return (dx, dw, db)
    }

    // MARK: - Pooling

    /// Max pooling y `(N, C, H_out, W_out)` and, for upstream gradient dy of
    /// that shape, dx `(N, C, H, W)`: each dy added to the first maximum of
    /// its window (padding never wins).
    public static func maxPool2d<T: BinaryFloatingPoint>(_ x: [T], _ s: Shape, gradOutput dy: [T]) -> (output: [Double], input: [Double]) {
        let (oh, ow, k) = (s.outHeight, s.outWidth, s.kernel)
        var y = [Double](repeating: 0, count: s.n * s.channels * oh * ow), dx = [Double](repeating: 0, count: x.count)
        for plane in 0..<(s.n * s.channels) { for i in 0..<oh { for j in 0..<ow {
            var best = -Double.infinity, at = -1
            for u in 0..<k { for v in 0..<k {
                guard let (r, q) = s.source(i, j, u, v) else { continue }
                let index = (plane * s.height + r) * s.width + q
                if at < 0 || Double(x[index]) > best { best = Double(x[index]); at = index }
            } }
            let o = (plane * oh + i) * ow + j
            y[o] = best
            dx[at] += Double(dy[o])
        } } }
        return (y, dx)
    }

    /// Average pooling y and dx (as ``maxPool2d(_:_:gradOutput:)``): padding
    /// counts as 0, the divisor is k² with `countIncludePad`, else the
    /// window's pixels inside the image.
    public static func avgPool2d<T: BinaryFloatingPoint>(_ x: [T], _ s: Shape, countIncludePad: Bool = true,
                                                         gradOutput dy: [T]) -> (output: [Double], input: [Double]) {
        let (oh, ow, k) = (s.outHeight, s.outWidth, s.kernel)
        var y = [Double](repeating: 0, count: s.n * s.channels * oh * ow), dx = [Double](repeating: 0, count: x.count)
        for plane in 0..<(s.n * s.channels) { for i in 0..<oh { for j in 0..<ow {
            var taps: [Int] = []
            for u in 0..<k { for v in 0..<k {
                if let (r, q) = s.source(i, j, u, v) { taps.append((plane * s.height + r) * s.width + q) }
            } }
            let divisor = Double(countIncludePad ? k * k : taps.count)
            let o = (plane * oh + i) * ow + j
            y[o] = taps.reduce(0) { $0 + Double(x[$1]) } / divisor
            for t in taps { dx[t] += Double(dy[o]) / divisor }
        } } }
        return (y, dx)
    }

    /// Adaptive average pooling to `out × out` cells, cell i covering rows
    /// ⌊i·H/out⌋ ..< ⌈(i+1)·H/out⌉: y `(N, C, out, out)` and dx `(N, C, H, W)`.
    public static func adaptiveAvgPool2d<T: BinaryFloatingPoint>(_ x: [T], n: Int, channels: Int, height: Int, width: Int,
                                                                 outputSize out: Int, gradOutput dy: [T]) -> (output: [Double], input: [Double]) {
        var y = [Double](repeating: 0, count: n * channels * out * out), dx = [Double](repeating: 0, count: x.count)
        func cells(_ i: Int, _ size: Int) -> Range<Int> { (i * size / out)..<(((i + 1) * size + out - 1) / out) }
        for plane in 0..<(n * channels) { for i in 0..<out { for j in 0..<out {
            let pixels = cells(i, height).flatMap { r in cells(j, width).map { (plane * height + r) * width + $0 } }
            let o = (plane * out + i) * out + j
            y[o] = pixels.reduce(0) { $0 + Double(x[$1]) } / Double(pixels.count)
            for p in pixels { dx[p] += Double(dy[o]) / Double(pixels.count) }
        } } }
        return (y, dx)
    }
}
