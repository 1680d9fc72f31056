import BatchNormKernels

// MARK: - Forward / backward pair of BatchNorm1d and BatchNorm2d

extension _BatchNorm {
    /// y from x `(N, C[, L])` or `(N, C, H, W)`, the same shape; see ``_BatchNorm`` for the formula.
    public func forward(_ x: Tensor) throws -> Tensor { try _forward(x, relu: false) }

    /// max(0, y) from x, the same shape: this layer followed by ``ReLU`` in
    /// one pass over memory (the clamp rides on the normalize pass). Output,
    /// running statistics and, through ``backwardReLU(_:needsInputGradient:)``,
    /// gradients are those of the pair (the gradients to the bit on
    /// cache-resident batches, to Float32 rounding on batches read from
    /// memory, where the fused reduction sums rows in pairs). ``Sequential`` calls it for every
    /// BatchNorm directly followed by a ReLU.
    public func forwardReLU(_ x: Tensor) throws -> Tensor { try _forward(x, relu: true) }

    /// Back-propagates ∂loss/∂(max(0, y)) `(N, C, *)` through the ReLU and
    /// this layer after ``forwardReLU(_:)``: the gradient is masked by
    /// y > 0 where the kernels read it (no masked copy is written), the
    /// sign of y recomputed from x and the forward's constants (the same
    /// bits: y itself is not read).
    public func backwardReLU(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? {
        try _backward(dy, needsInputGradient: needsInputGradient, relu: true)
    }

    func _forward(_ x: Tensor, relu: Bool) throws -> Tensor {
        let shape = try layout(of: x)
        let c = numFeatures
        let useBatch = isTraining || !trackRunningStats
        let gamma = weight?.value._pointer, beta = bias?.value._pointer
        if useBatch {
            // pass 1: per-feature mean and biased variance, one read of x
            x.withUnsafeBufferPointer { BatchNormKernel.moments($0.baseAddress!, shape: shape, into: &moments) }
            if isTraining {
                // the batch's statistics (SyncBatchNorm: over every rank)
                try reduceMoments()
                if moments.count < 2 {
                    throw BatchNormKitError.notEnoughValuesPerFeature(context: statisticsContext, shape: x.shape)
                }
                if let runningMean, let runningVar {
                    BatchNormKernel.updateRunningStatistics(
                        runningMean: runningMean._pointer, runningVar: runningVar._pointer,
                        moments: moments, momentum: momentum, numBatchesTracked: &numBatchesTracked)
                }
            }
            // fold normalization and affine into y = (x − shift)·scale + shiftedBias
            BatchNormKernel.forwardConstants(moments: moments, gamma: gamma, beta: beta, eps: eps,
                                             shift: work.shift, scale: work.scale, bias: work.shiftedBias,
                                             invStd: work.invStd, meanOffset: work.meanOffset)
        } else {
            // eval: running statistics, y = (x − running_mean)·scale + β
            BatchNormKernel.forwardConstants(runningMean: runningMean!._pointer, runningVar: runningVar!._pointer,
                                             featureCount: c, gamma: gamma, beta: beta, eps: eps,
                                             shift: work.shift, scale: work.scale, bias: work.shiftedBias,
                                             invStd: work.invStd, meanOffset: work.meanOffset)
        }
        // pass 2: one read of x, one write of y
        let y = output._reuse(sameShapeAs: x)
        if relu {
            BatchNormKernel.normalizeAffineReLU(x._pointer, shape: shape, shift: work.shift, scale: work.scale,
                                                bias: work.shiftedBias, output: y._pointer)
        } else {
            BatchNormKernel.normalizeAffine(x._pointer, shape: shape, shift: work.shift, scale: work.scale,
                                            bias: work.shiftedBias, output: y._pointer)
        }
        input = x
        lastForwardFusedReLU = relu
        usedBatchStatistics = useBatch
        lastForwardTrained = isTraining
        lastShape = shape
        return y
    }

    /// dx from dy `(N, C[, L])`; accumulates dγ += Σdy·x̂ and dβ += Σdy.
    ///
    /// With batch statistics, m = N·L, g = γ/σ:
    /// dx = g·(dy − Σdy/m − x̂·Σ(dy·x̂)/m). With running statistics
    /// (eval mode) μ and σ are constants and dx = g·dy.
    public func backward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? {
        try _backward(dy, needsInputGradient: needsInputGradient, relu: false)
    }

    /// `relu`: dy is the gradient at the ReLU's output, masked by y > 0
    /// (y, this layer's output, is the ReLU's output after ``forwardReLU(_:)``
    /// and has the same sign pattern after ``forward(_:)``); the kernels
    /// recompute y's pre-activation from x and the constants in `work`.
    func _backward(_ dy: Tensor, needsInputGradient: Bool, relu: Bool) throws -> Tensor? {
        _ = try _checkGradient(dy, like: output, context: relu ? "\(context) → ReLU" : context)
        guard let x = input else { return nil }
        let shape = lastShape, c = numFeatures
        let gamma = weight?.value._pointer
        // one pass over dy and x: Σdy and Σdy·(x − shift)
        if relu {
            BatchNormKernel.backwardReduceReLU(gradOutput: dy._pointer, input: x._pointer, shape: shape, shift: work.shift,
                                               scale: work.scale, bias: work.shiftedBias, sumGrad: work.sumGrad,
                                               sumGradShifted: work.sumGradShifted, scratch: work.reduceScratch)
        } else {
            BatchNormKernel.backwardReduce(gradOutput: dy._pointer, input: x._pointer, shape: shape, shift: work.shift,
                                           sumGrad: work.sumGrad, sumGradShifted: work.sumGradShifted, scratch: work.reduceScratch)
        }
        // γ and β gradients accumulate, or start from zero right after zeroGrad
        let gammaGrad = weight?._gradForAccumulation(), betaGrad = bias?._gradForAccumulation()
        // dγ, dβ and the constants of dx = gradScale·dy + inputScale·(x − shift) + constant
        if let total = try reduceGradientSums(gammaGrad: gammaGrad, betaGrad: betaGrad) {
            // dγ, dβ are taken; the sums and the count are every rank's
            BatchNormKernel.backwardConstants(
                sumGrad: work.sumGrad, sumGradShifted: work.sumGradShifted, invStd: work.invStd, meanOffset: work.meanOffset,
                featureCount: c, gamma: gamma, valuesPerFeature: total, usedBatchStatistics: true,
                gammaGrad: nil, betaGrad: nil,
                gradScale: work.gradScale, inputScale: work.inputScale, constant: work.gradConstant)
        } else {
            BatchNormKernel.backwardConstants(
                sumGrad: work.sumGrad, sumGradShifted: work.sumGradShifted, invStd: work.invStd, meanOffset: work.meanOffset,
                featureCount: c, gamma: gamma, valuesPerFeature: shape.valuesPerFeature,
                usedBatchStatistics: usedBatchStatistics, gammaGrad: gammaGrad, betaGrad: betaGrad,
                gradScale: work.gradScale, inputScale: work.inputScale, constant: work.gradConstant)
        }
        guard needsInputGradient else { return nil }
        let dx = gradInput._reuse(sameShapeAs: x)
        if relu {
            BatchNormKernel.backwardInputReLU(gradOutput: dy._pointer, input: x._pointer, shape: shape, shift: work.shift,
                                              scale: work.scale, bias: work.shiftedBias, gradScale: work.gradScale,
                                              inputScale: work.inputScale, constant: work.gradConstant,
                                              gradInput: dx._pointer)
        } else {
            BatchNormKernel.backwardInput(gradOutput: dy._pointer, input: x._pointer, shape: shape, shift: work.shift,
                                          gradScale: work.gradScale, inputScale: work.inputScale, constant: work.gradConstant,
                                          gradInput: dx._pointer)
        }
        return dx
    }
}
