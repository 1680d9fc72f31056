import BatchNormKernels

// MARK: - Forward / backward pair of BatchNorm1d and BatchNorm2d

extension _BatchNorm {
    /// y from x `(N, C[, L])` or `(N, C, H, W)`, the same shape; see ``_BatchNorm`` for the formula.
    public func forward(_ x: Tensor) throws -> Tensor {
        let shape = try layout(of: x)
        let c = numFeatures
        let useBatch = isTraining || !trackRunningStats
        let synchronized = isTraining && group != nil
        // (a SyncBatchNorm rank may hold a single value: the count that matters is every rank's)
        if isTraining && !synchronized && shape.valuesPerFeature < 2 {
            throw BatchNormKitError.notEnoughValuesPerFeature(context: context, shape: x.shape)
        }
        let y = output._reuse(sameShapeAs: x)
        let gamma = weight?.value._pointer, beta = bias?.value._pointer
        if useBatch {
            // pass 1: per-feature mean and biased variance, one read of x
            x.withUnsafeBufferPointer { BatchNormKernel.moments($0.baseAddress!, shape: shape, into: &moments) }
            if synchronized {
                // every rank's moments, merged in rank order: the same on every rank
                try _synchronizeMoments()
                if moments.count < 2 {
                    throw BatchNormKitError.notEnoughValuesPerFeature(context: context + " over all ranks", shape: x.shape)
                }
            }
            if isTraining, let runningMean, let runningVar {
                BatchNormKernel.updateRunningStatistics(
                    runningMean: runningMean._pointer, runningVar: runningVar._pointer,
                    moments: moments, momentum: momentum, numBatchesTracked: &numBatchesTracked)
            }
            // fold normalization and affine into y = (x − shift)·scale + shiftedBias
            BatchNormKernel.forwardConstants(moments: moments, gamma: gamma, beta: beta, eps: eps,
                                             shift: shift, scale: scale, bias: shiftedBias,
                                             invStd: invStd, meanOffset: meanOffset)
        } else {
            // eval: running statistics, y = (x − running_mean)·scale + β
            BatchNormKernel.forwardConstants(runningMean: runningMean!._pointer, runningVar: runningVar!._pointer,
                                             featureCount: c, gamma: gamma, beta: beta, eps: eps,
                                             shift: shift, scale: scale, bias: shiftedBias,
                                             invStd: invStd, meanOffset: meanOffset)
        }
        // pass 2: one read of x, one write of y
        BatchNormKernel.normalizeAffine(x._pointer, shape: shape, shift: shift, scale: scale,
                                        bias: shiftedBias, output: y._pointer)
        input = x
        usedBatchStatistics = useBatch
        usedSyncedStatistics = useBatch && synchronized
        lastShape = shape
        return y
    }

    /// dx from dy `(N, C[, L])`; accumulates dγ += Σdy·x̂ and dβ += Σdy.
    ///
    /// With batch statistics, m = N·L, g = γ/σ:
    /// dx = g·(dy − Σdy/m − x̂·Σ(dy·x̂)/m). With running statistics
    /// (eval mode) μ and σ are constants and dx = g·dy.
    public func backward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? {
        _ = try _checkGradient(dy, like: output, context: context)
        guard let x = input else { return nil }
        let shape = lastShape, c = numFeatures
        // one pass over dy and x: Σdy and Σdy·(x − shift)
        BatchNormKernel.backwardReduce(gradOutput: dy._pointer, input: x._pointer, shape: shape, shift: shift,
                                       sumGrad: sumGrad, sumGradShifted: sumGradShifted, scratch: reduceScratch)
        // γ and β gradients accumulate, or start from zero right after zeroGrad
        let gammaGrad = weight?._gradForAccumulation(), betaGrad = bias?._gradForAccumulation()
        // dγ, dβ and the constants of dx = gradScale·dy + inputScale·(x − shift) + constant
        if usedSyncedStatistics {
            // dγ, dβ from this rank's sums (as PyTorch: data parallelism adds
            // them later), dx's constants from every rank's
            try _backwardConstantsSynchronized(gammaGrad: gammaGrad, betaGrad: betaGrad)
        } else {
            BatchNormKernel.backwardConstants(
                sumGrad: sumGrad, sumGradShifted: sumGradShifted, invStd: invStd, meanOffset: meanOffset,
                featureCount: c, gamma: weight?.value._pointer, valuesPerFeature: shape.valuesPerFeature,
                usedBatchStatistics: usedBatchStatistics,
                gammaGrad: gammaGrad, betaGrad: betaGrad,
                gradScale: gradScale, inputScale: inputScale, constant: gradConstant)
        }
        guard needsInputGradient else { return nil }
        let dx = gradInput._reuse(sameShapeAs: x)
        BatchNormKernel.backwardInput(gradOutput: dy._pointer, input: x._pointer, shape: shape, shift: shift,
                                      gradScale: gradScale, inputScale: inputScale, constant: gradConstant,
                                      gradInput: dx._pointer)
        return dx
    }
}
