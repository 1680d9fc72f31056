import BatchNormKernels

// MARK: - Forward / backward pair of BatchNorm1d

extension BatchNorm1d {
    /// y `(N, C[, L])` from x of the same shape; see the type's formula.
    public func forward(_ x: Tensor) throws -> Tensor {
        let shape = try layout(of: x)
        let c = numFeatures
        let useBatch = isTraining || !trackRunningStats
        if isTraining && shape.valuesPerFeature < 2 {
            throw BatchNormKitError.notEnoughValuesPerFeature(context: "BatchNorm1d(\(c))", shape: x.shape)
        }
        let y = output._reuse(sameShapeAs: x)
        let gamma = weight?.value._pointer, beta = bias?.value._pointer
        if useBatch {
            // pass 1: per-feature mean and biased variance, one read of x
            x.withUnsafeBufferPointer { BatchNormKernel.moments($0.baseAddress!, shape: shape, into: &moments) }
            if isTraining, let runningMean, let runningVar {
                BatchNormKernel.updateRunningStatistics(
                    runningMean: runningMean._pointer, runningVar: runningVar._pointer,
                    moments: moments, momentum: momentum, numBatchesTracked: &numBatchesTracked)
            }
            // fold normalization and affine into y = (x − shift)·scale + shiftedBias
            for f in 0..<c {
                let s = 1 / (moments.biasedVariance(f) + Double(eps)).squareRoot()
                let g = gamma.map { Double($0[f]) } ?? 1
                let offset = moments.mean[f] - Double(moments.shift[f])
                invStd[f] = s; meanOffset[f] = offset
                shift[f] = moments.shift[f]
                scale[f] = Float(g * s)
                shiftedBias[f] = Float((beta.map { Double($0[f]) } ?? 0) - offset * g * s)
            }
        } else {
            // eval: running statistics, y = (x − running_mean)·scale + β
            let rm = runningMean!._pointer, rv = runningVar!._pointer
            for f in 0..<c {
                let s = 1 / (Double(rv[f]) + Double(eps)).squareRoot()
                invStd[f] = s; meanOffset[f] = 0
                shift[f] = rm[f]
                scale[f] = Float((gamma.map { Double($0[f]) } ?? 1) * s)
                shiftedBias[f] = beta?[f] ?? 0
            }
        }
        // pass 2: one read of x, one write of y
        BatchNormKernel.normalizeAffine(x._pointer, shape: shape, shift: shift, scale: scale,
                                        bias: shiftedBias, output: y._pointer)
        input = x
        usedBatchStatistics = useBatch
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
        let m = Double(shape.valuesPerFeature)
        let gamma = weight?.value._pointer
        for f in 0..<c {
            let s = invStd[f], delta = meanOffset[f]
            let sumDy = sumGrad[f]
            let sumDyCentred = sumGradShifted[f] - delta * sumDy      // Σdy·(x − μ)
            if let weight, let bias {
                weight.grad._pointer[f] += Float(s * sumDyCentred)    // Σdy·x̂
                bias.grad._pointer[f] += Float(sumDy)
            }
            let g = (gamma.map { Double($0[f]) } ?? 1) * s
            gradScale[f] = Float(g)
            if usedBatchStatistics {
                // dx = g·dy + k·(x − shift − δ) − g·Σdy/m, k = −g·s²·Σdy(x − μ)/m
                let k = -g * s * s * sumDyCentred / m
                inputScale[f] = Float(k)
                gradConstant[f] = Float(-g * sumDy / m - k * delta)
            } else {
                inputScale[f] = 0
                gradConstant[f] = 0
            }
        }
        guard needsInputGradient else { return nil }
        let dx = gradInput._reuse(sameShapeAs: x)
        BatchNormKernel.backwardInput(gradOutput: dy._pointer, input: x._pointer, shape: shape, shift: shift,
                                      gradScale: gradScale, inputScale: inputScale, constant: gradConstant,
                                      gradInput: dx._pointer)
        return dx
    }
}
