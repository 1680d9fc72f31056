// The sliding window shared by Conv2d and the pooling layers: which input
// pixels an output pixel sees, and the output size PyTorch computes,
//
//     out = ⌊(in + 2·padding − dilation·(kernel − 1) − 1) / stride⌋ + 1
//
// (`torch.nn.Conv2d`'s "Shape" section; MaxPool2d and AvgPool2d use the same
// formula with dilation 1 and ceil_mode false).

/// A square window over `(N, C, H, W)` and the output size it gives.
struct _WindowGeometry: Equatable {
    /// N, C, H, W of the input.
    var n, channels, height, width: Int
    var kernel, stride, padding, dilation: Int
    /// Output height and width.
    var outHeight, outWidth: Int

    /// Output pixels per channel, `outHeight·outWidth`.
    var outPlane: Int { outHeight * outWidth }
    /// Input pixels per channel, `height·width`.
    var inPlane: Int { height * width }

    /// The window over `shape`, which must be `(N, channels, H, W)` (any C
    /// when `channels` is nil) with N ≥ 1 and a window that fits at least once.
    ///
    /// - Parameter context: the layer as messages name it, e.g.
    ///   `Conv2d(1→32, kernel 3, stride 1, padding 0, dilation 1)`; an
    ///   autoclosure, so the happy path builds no string.
    /// - Throws: `shapeMismatch` for another rank or an image smaller than
    ///   the (dilated) kernel after padding; `featureCountMismatch` for the
    ///   wrong channel count; `emptyBatch` for N = 0.
    init(input shape: [Int], channels expected: Int?, kernel: Int, stride: Int, padding: Int, dilation: Int,
         context: @autoclosure () -> String) throws {
        guard shape.count == 4 else {
            throw BatchNormKitError.shapeMismatch(context: context(), expected: "(N, \(expected.map(String.init) ?? "C"), H, W)", got: shape)
        }
        let channels = shape[1]
        if let expected, channels != expected {
            throw BatchNormKitError.featureCountMismatch(context: context(), expected: expected, got: channels)
        }
        guard shape[0] > 0 else { throw BatchNormKitError.emptyBatch(context: context()) }
        let span = dilation * (kernel - 1) + 1
        let outH = (shape[2] + 2 * padding - span) / stride + 1
        let outW = (shape[3] + 2 * padding - span) / stride + 1
        guard shape[2] + 2 * padding >= span, shape[3] + 2 * padding >= span, outH >= 1, outW >= 1 else {
            throw BatchNormKitError.shapeMismatch(
                context: context(),
                expected: "(N, \(channels), H, W) with H and W + 2·padding (\(2 * padding)) ≥ the window's span \(span)"
                    + " (kernel \(kernel), dilation \(dilation), stride \(stride)); input \(shape[2])×\(shape[3]) gives no output pixel",
                got: shape)
        }
        n = shape[0]; self.channels = channels; height = shape[2]; width = shape[3]
        self.kernel = kernel; self.stride = stride; self.padding = padding; self.dilation = dilation
        outHeight = outH; outWidth = outW
    }

    /// For kernel offset `offset` (a row or column index in 0..<kernel)
    /// along an axis of `size` inputs and `outputs` outputs: the outputs
    /// `lo..<hi` whose input `o·stride + offset·dilation − padding` lies
    /// inside the image (the others see padding).
    @inline(__always)
    func validOutputs(offset: Int, size: Int, outputs: Int) -> (shift: Int, lo: Int, hi: Int) {
        let shift = offset * dilation - padding
        let lo = shift >= 0 ? 0 : (-shift + stride - 1) / stride
        let last = size - 1 - shift
        let hi = last < 0 ? 0 : min(outputs, last / stride + 1)
        return (shift, min(lo, outputs), max(min(lo, outputs), hi))
    }
}

/// Checks a constructor argument: `value ≥ minimum`.
func _requireAtLeast(_ minimum: Int, _ name: String, _ value: Int) throws {
    guard value >= minimum else {
        throw BatchNormKitError.invalidArgument(name: name, value: "\(value)", requirement: "must be ≥ \(minimum)")
    }
}

extension Optional where Wrapped == Tensor {
    /// Like `_reuse(shape:)` for `(d0, d1, d2, d3)`, building no array when
    /// the shape is unchanged (the steady state of a training loop).
    mutating func _reuse(_ d0: Int, _ d1: Int, _ d2: Int, _ d3: Int) -> Tensor {
        if let t = self, t.shape.count == 4, t.shape[0] == d0, t.shape[1] == d1, t.shape[2] == d2, t.shape[3] == d3 {
            return t
        }
        return _reuse(shape: [d0, d1, d2, d3])
    }
}
