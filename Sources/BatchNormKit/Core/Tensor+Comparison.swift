// Comparing two tensors without letting a NaN pass for agreement: Swift's
// `max(a, b)` returns the non-NaN argument, so a running maximum over
// differences skips every NaN and can report 0 for a model whose output is
// all NaN.

extension Tensor {
    /// max |self − other| over all elements; NaN when any difference is NaN
    /// (either side NaN, or ∞ − ∞), ∞ when one side is infinite.
    ///
    /// - Throws: `shapeMismatch` when the shapes differ.
    public func maxAbsoluteDifference(to other: Tensor) throws -> Float {
        guard shape == other.shape else {
            throw BatchNormKitError.shapeMismatch(context: "maxAbsoluteDifference", expected: "\(shape)", got: other.shape)
        }
        let a = _pointer, b = other._pointer
        var worst: Float = 0
        for i in 0..<count {
            let d = abs(a[i] - b[i])
            if d.isNaN { return .nan }
            if d > worst { worst = d }
        }
        return worst
    }

    /// max |element|; NaN when any element is NaN.
    public var maxMagnitude: Float {
        let p = _pointer
        var largest: Float = 0
        for i in 0..<count {
            let m = abs(p[i])
            if m.isNaN { return .nan }
            if m > largest { largest = m }
        }
        return largest
    }
}
