import CBatchNormKitIntrinsics
import KernelSupport

// MARK: - Per-feature constants (the layer's O(C) bookkeeping, vectorisable)
//
// Folding batch statistics, γ and β into the per-feature constants of
// ``normalizeAffine(_:shape:shift:scale:bias:output:)`` and
// ``backwardInput(gradOutput:input:shape:shift:gradScale:inputScale:constant:gradInput:)``
// costs a square root and a few divisions per feature. Written as a loop over
// a layer's stored properties (optionals, arrays inside a stored struct) it
// cost as much as the data passes themselves at (64, 4096) (Benchmarks/README.md,
// "Measurements behind the kernels"). These functions take raw pointers only, so the loops compile to
// straight-line vector code. They evaluate exactly the expressions
// BatchNorm1d used (same order, Double), so results are bit-identical.

// Each loop below reads at most three arrays and writes one, so LLVM's
// vectoriser (which must prove or check that outputs and inputs do not
// overlap) turns every one into AVX code; one loop writing five arrays stays
// scalar.
// `squareRoot()` itself never vectorises on Linux (Swift calls libm `sqrt`,
// which may set errno): ``_inverseSquareRoots`` takes its square roots from
// the CBatchNormKitIntrinsics shim (LLVM's sqrt, vsqrtpd) instead.

extension BatchNormKernel {
    /// Training forward: from a batch's moments,
    /// invStd = 1/√(M2/n + ε), meanOffset = mean − shift, shift = moments.shift,
    /// scale = γ·invStd, bias = β − meanOffset·γ·invStd (γ = 1, β = 0 when nil).
    ///
    /// - gamma, beta: `[C]` or nil; every output `[C]`, C = moments.featureCount.
    @inlinable
    public static func forwardConstants(
        moments: FeatureMoments, gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?, eps: Float,
        shift: UnsafeMutablePointer<Float>, scale: UnsafeMutablePointer<Float>, bias: UnsafeMutablePointer<Float>,
        invStd: UnsafeMutablePointer<Double>, meanOffset: UnsafeMutablePointer<Double>
    ) {
        let c = moments.featureCount, count = Double(moments.count), e = Double(eps)
        moments.shift.withUnsafeBufferPointer { sh in
            moments.mean.withUnsafeBufferPointer { mean in
                moments.m2.withUnsafeBufferPointer { m2 in
                    let sh = sh.baseAddress!, mean = mean.baseAddress!, m2 = m2.baseAddress!
                    for f in 0..<c { invStd[f] = m2[f] / count + e }
                    _inverseSquareRoots(invStd, count: c)
                    for f in 0..<c { meanOffset[f] = mean[f] - Double(sh[f]) }
                    shift.update(from: sh, count: c)
                }
            }
        }
        if let gamma {
            for f in 0..<c { scale[f] = Float(Double(gamma[f]) * invStd[f]) }
            if let beta {
                for f in 0..<c { bias[f] = Float(Double(beta[f]) - meanOffset[f] * Double(gamma[f]) * invStd[f]) }
            } else {
                for f in 0..<c { bias[f] = Float(0 - meanOffset[f] * Double(gamma[f]) * invStd[f]) }
            }
        } else {
            for f in 0..<c { scale[f] = Float(invStd[f]) }
            if let beta {
                for f in 0..<c { bias[f] = Float(Double(beta[f]) - meanOffset[f] * invStd[f]) }
            } else {
                for f in 0..<c { bias[f] = Float(0 - meanOffset[f] * invStd[f]) }
            }
        }
    }

    /// v ← 1/√v: a vector loop of correctly rounded square roots (the C shim),
    /// then a vector loop of divisions.
    @inlinable
    static func _inverseSquareRoots(_ v: UnsafeMutablePointer<Double>, count c: Int) {
        bnk_square_roots(v, c)
        for f in 0..<c { v[f] = 1 / v[f] }
    }

    /// Eval forward: from the running buffers,
    /// invStd = 1/√(running_var + ε), meanOffset = 0, shift = running_mean,
    /// scale = γ·invStd, bias = β.
    @inlinable
    public static func forwardConstants(
        runningMean: UnsafePointer<Float>, runningVar: UnsafePointer<Float>, featureCount c: Int,
        gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?, eps: Float,
        shift: UnsafeMutablePointer<Float>, scale: UnsafeMutablePointer<Float>, bias: UnsafeMutablePointer<Float>,
        invStd: UnsafeMutablePointer<Double>, meanOffset: UnsafeMutablePointer<Double>
    ) {
        let e = Double(eps)
        for f in 0..<c { invStd[f] = Double(runningVar[f]) + e }
        _inverseSquareRoots(invStd, count: c)
        meanOffset.update(repeating: 0, count: c)
        shift.update(from: runningMean, count: c)
        if let gamma {
            for f in 0..<c { scale[f] = Float(Double(gamma[f]) * invStd[f]) }
        } else {
            for f in 0..<c { scale[f] = Float(invStd[f]) }
        }
        if let beta { bias.update(from: beta, count: c) } else { bias.update(repeating: 0, count: c) }
    }

    /// Backward: from ``backwardReduce`` sums and the forward's invStd and
    /// meanOffset (δ), with Σdy·(x − μ) = sumGradShifted − δ·sumGrad:
    /// dγ += invStd·Σdy·(x − μ), dβ += Σdy (when gammaGrad, betaGrad are given);
    /// gradScale = g = γ·invStd; with batch statistics (m = N·L values per feature)
    /// inputScale = k = −g·invStd²·Σdy(x − μ)/m, constant = −g·Σdy/m − k·δ,
    /// else inputScale = constant = 0.
    ///
    /// - sumGradShifted: overwritten with Σdy·(x − μ).
    @inlinable
    public static func backwardConstants(
        sumGrad: UnsafePointer<Double>, sumGradShifted: UnsafeMutablePointer<Double>,
        invStd: UnsafePointer<Double>, meanOffset: UnsafePointer<Double>, featureCount c: Int,
        gamma: UnsafePointer<Float>?, valuesPerFeature: Int, usedBatchStatistics: Bool,
        gammaGrad: UnsafeMutablePointer<Float>?, betaGrad: UnsafeMutablePointer<Float>?,
        gradScale: UnsafeMutablePointer<Float>, inputScale: UnsafeMutablePointer<Float>,
        constant: UnsafeMutablePointer<Float>
    ) {
        let m = Double(valuesPerFeature)
        let centred = sumGradShifted     // Σdy·(x − μ), in place
        for f in 0..<c { centred[f] = sumGradShifted[f] - meanOffset[f] * sumGrad[f] }
        if let gammaGrad, let betaGrad {
            for f in 0..<c { gammaGrad[f] += Float(invStd[f] * centred[f]) }     // Σdy·x̂
            for f in 0..<c { betaGrad[f] += Float(sumGrad[f]) }
        }
        if let gamma {
            for f in 0..<c { gradScale[f] = Float(Double(gamma[f]) * invStd[f]) }
        } else {
            for f in 0..<c { gradScale[f] = Float(invStd[f]) }
        }
        guard usedBatchStatistics else {
            inputScale.update(repeating: 0, count: c)
            constant.update(repeating: 0, count: c)
            return
        }
        // g = γ·s recomputed in Double (gradScale holds it rounded to Float)
        @inline(__always) func fold(_ gammaAt: (Int) -> Double) {
            for f in 0..<c {
                let s = invStd[f], g = gammaAt(f) * s
                inputScale[f] = Float(-g * s * s * centred[f] / m)
            }
            for f in 0..<c {
                let s = invStd[f], g = gammaAt(f) * s
                let k = -g * s * s * centred[f] / m
                constant[f] = Float(-g * sumGrad[f] / m - k * meanOffset[f])
            }
        }
        if let gamma { fold { Double(gamma[$0]) } } else { fold { _ in 1 } }
    }
}
