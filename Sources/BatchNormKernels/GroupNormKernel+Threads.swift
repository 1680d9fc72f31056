import KernelSupport

// MARK: - GroupNorm passes on the kernels' pool
//
// GroupNorm's rows are independent, so a pass splits the batch's samples into
// contiguous parts (`_partRange`). The pass's arguments travel
// as one value on the caller's stack and a part runs through a C function
// pointer, as BatchNorm's jobs do: a closure handed to the workers would have
// its context allocated on every call (`bnkbench`'s allocation report counted
// 2 per GroupNorm pass that way).

/// The arguments of one GroupNorm pass, for each part of its split.
struct _GroupNormJob {
    enum Pass { case forward, forwardReLU, normalize, backward, backwardReLU }
    let pass: Pass
    let shape: GroupNormShape
    let input: UnsafePointer<Float>
    let gamma: UnsafePointer<Float>?
    let shift: UnsafeMutablePointer<Float>
    let meanOffset, invStd: UnsafeMutablePointer<Double>
    let streaming: Bool
    // forward, normalize
    var beta: UnsafePointer<Float>? = nil
    var eps: Float = 0
    var output: UnsafeMutablePointer<Float>? = nil
    // backward: dy (masked by [y > 0] with y = maskedBy for .backwardReLU),
    // dx or nil, the parameter sums of part 0 and, per extra part, partBytes of workspace
    var gradOutput: UnsafePointer<Float>? = nil
    var maskedBy: UnsafePointer<Float>? = nil
    var gradInput: UnsafeMutablePointer<Float>? = nil
    var wantsParams = false
    var totals: UnsafeMutablePointer<Double>? = nil
    var blockSums: UnsafeMutablePointer<Float>? = nil
    var fixedStatistics = false
    var partBytes = 0
    // the split
    var parts = 1
    var workspace: UnsafeMutableRawPointer? = nil

    init(_ pass: Pass, shape: GroupNormShape, input: UnsafePointer<Float>, gamma: UnsafePointer<Float>?,
         shift: UnsafeMutablePointer<Float>, meanOffset: UnsafeMutablePointer<Double>, invStd: UnsafeMutablePointer<Double>) {
        (self.pass, self.shape, self.input, self.gamma) = (pass, shape, input, gamma)
        (self.shift, self.meanOffset, self.invStd) = (shift, meanOffset, invStd)
        // arrays of the elementwise pass: x and y; dy, x and dx (and y behind a ReLU)
        let arrays: Int
        switch pass {
        case .forward, .forwardReLU, .normalize: arrays = 2
        case .backward: arrays = 3
        case .backwardReLU: arrays = 4
        }
        streaming = _streams(values: shape.elementCount, arrays: arrays)
    }

    /// Runs every part — on the pool when the batch is large enough, else
    /// all of it on this thread — then adds the extra parts' parameter sums
    /// into part 0's, in part order.
    mutating func runSplit() {
        let split = _threadParts(values: shape.elementCount, samples: shape.n)
        if split > 1 {
            let space = _threading.acquire(bytes: (split - 1) * partBytes)
            defer { _threading.release() }
            (parts, workspace) = (split, space)
            withUnsafeMutablePointer(to: &self) { job in
                _threading.run(parts: split, task: { raw, part in
                    raw.assumingMemoryBound(to: _GroupNormJob.self).pointee.run(part: part)
                }, context: UnsafeMutableRawPointer(job))
            }
            guard wantsParams, let totals else { return }
            for part in 1..<split {
                let p = (space + (part - 1) * partBytes).assumingMemoryBound(to: Double.self)
                for j in 0..<(2 * shape.c) { totals[j] += p[j] }
            }
        } else {
            parts = 1
            run(part: 0)
        }
    }

    /// Part `part` of `parts`: its samples, and (backward) its own sums.
    func run(part: Int) {
        let samples = _partRange(part, of: parts, shape.n)
        switch pass {
        case .forward, .forwardReLU:
            GroupNormKernel._forwardSamples(input, shape: shape, samples: samples, gamma: gamma, beta: beta, eps: eps,
                                            output: output!, shift: shift, meanOffset: meanOffset, invStd: invStd,
                                            relu: pass == .forwardReLU, streaming: streaming)
        case .normalize:
            GroupNormKernel._normalizeSamples(input, shape: shape, samples: samples, gamma: gamma, beta: beta, shift: shift,
                                              meanOffset: meanOffset, invStd: invStd, output: output!, streaming: streaming)
        case .backward: backward(_Unmasked.self, part: part, samples: samples)
        case .backwardReLU: backward(_ReLUMasked.self, part: part, samples: samples)
        }
    }

    private func backward<Mask: _GradientMask>(_ mask: Mask.Type, part: Int, samples: Range<Int>) {
        var t = totals!, b = blockSums!
        if part > 0, let workspace {
            t = (workspace + (part - 1) * partBytes).assumingMemoryBound(to: Double.self)
            b = UnsafeMutableRawPointer(t + 2 * shape.c).assumingMemoryBound(to: Float.self)
        }
        GroupNormKernel._backwardSamples(gradOutput: gradOutput!, output: maskedBy!, mask: mask, input: input, shape: shape,
                                         samples: samples, gamma: gamma, shift: shift, meanOffset: meanOffset, invStd: invStd,
                                         gradInput: gradInput, wantsParams: wantsParams, totals: t, blockSums: b,
                                         fixedStatistics: fixedStatistics, streaming: streaming)
    }
}
