// Verdicts of the lab: a sentence computed from numbers by a stated rule,
// never typed in by hand.

/// What the numbers say about a claim.
public enum VerdictOutcome: String, Sendable, Equatable, CaseIterable {
    /// The measured difference is in the claimed direction and beyond the rule's noise bound.
    case holds
    /// Within the noise bound: the data neither support nor contradict the claim.
    case notShown = "not shown"
    /// Beyond the noise bound in the direction opposite to the claim.
    case reversed
}

/// A computed verdict: outcome, the figure it rests on and the rule that produced it.
public struct Verdict: Sendable, Equatable {
    public let outcome: VerdictOutcome
    /// E.g. `BatchNorm 3.0 ± 0.0 vs none 5.3 ± 0.6 epochs`.
    public let figure: String
    /// The rule in words, e.g. "holds when the difference of means exceeds 2 × the pooled std".
    public let rule: String
}

/// Mean and sample standard deviation (n − 1; 0 for one value) of finite values.
public struct Spread: Sendable, Equatable {
    public let mean: Double
    public let std: Double
    public let count: Int

    public init(_ values: [Double]) {
        let finite = values.filter(\.isFinite)
        count = finite.count
        mean = finite.isEmpty ? .nan : finite.reduce(0, +) / Double(finite.count)
        let m = mean
        std = finite.count < 2 ? 0 : (finite.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(finite.count - 1)).squareRoot()
    }

    /// `mean ± std` with `digits` decimals, scaled by `scale` (100 for percent).
    /// "n/a" when no value was finite (every run diverged).
    public func formatted(_ digits: Int = 3, scale: Double = 1) -> String {
        count == 0 ? "n/a" : "\(_fixed(mean * scale, digits)) ± \(_fixed(std * scale, digits))"
    }
}

/// The lab's decision rules.
public enum VerdictRule {
    /// How many pooled standard deviations a difference must exceed.
    public static let sigmas = 2.0

    /// The two-sample rule: the claim is that `claimed` is better than
    /// `baseline` (larger when `higherIsBetter`, else smaller). With
    /// d = the difference of means in the claimed direction and s the pooled
    /// sample standard deviation, `holds` when d > 2s and d > `minimumEffect`,
    /// `reversed` when −d > 2s and −d > `minimumEffect`, else `not shown`.
    /// Non-finite values (diverged runs) are left out; with no finite value
    /// on a side the claimed side wins only if it has values and the other has none.
    public static func compare(claimed: [Double], baseline: [Double], higherIsBetter: Bool,
                               minimumEffect: Double = 0) -> VerdictOutcome {
        let a = Spread(claimed), b = Spread(baseline)
        if a.count == 0 || b.count == 0 {
            if a.count > 0 { return .holds }
            if b.count > 0 { return .reversed }
            return .notShown
        }
        let d = (a.mean - b.mean) * (higherIsBetter ? 1 : -1)
        let pooled = pooledStd(a, b)
        let bound = max(sigmas * pooled, minimumEffect)
        if d > bound && d > 0 { return .holds }
        if -d > bound && d < 0 { return .reversed }
        return .notShown
    }

    /// √(((n₁ − 1)s₁² + (n₂ − 1)s₂²) / (n₁ + n₂ − 2)), 0 with fewer than 3 values in all.
    static func pooledStd(_ a: Spread, _ b: Spread) -> Double {
        let dof = a.count + b.count - 2
        return dof > 0 ? ((Double(a.count - 1) * a.std * a.std + Double(b.count - 1) * b.std * b.std) / Double(dof)).squareRoot() : 0
    }

    /// The rule of ``compare(claimed:baseline:higherIsBetter:minimumEffect:)`` in words.
    public static func compareRule(_ quantity: String, seeds: String) -> String {
        "holds when the difference of mean \(quantity) in the claimed direction exceeds \(Int(sigmas)) × the pooled "
            + "sample standard deviation over \(seeds); reversed when it does so in the opposite direction; otherwise not shown"
    }

    /// The "difference isn't drastic" rule: holds when |mean(a) − mean(b)| < `limit`, reversed when it exceeds `limit`
    /// by more than 2 pooled standard deviations, else not shown.
    public static func small(_ a: [Double], _ b: [Double], limit: Double) -> VerdictOutcome {
        let x = Spread(a), y = Spread(b)
        guard x.count > 0, y.count > 0 else { return .notShown }
        let d = abs(x.mean - y.mean)
        let pooled = pooledStd(x, y)
        if d < limit { return .holds }
        if d - limit > sigmas * pooled { return .reversed }
        return .notShown
    }

    /// The non-inferiority rule: the claim is that `claimed` is no worse than
    /// `baseline` by more than `margin`. With d = the difference of means in the
    /// claimed direction and s the pooled sample standard deviation, `holds`
    /// when d − 2s > −margin (even the unfavourable end of the noise band is
    /// within the margin), `reversed` when d + 2s < −margin (worse by more than
    /// the margin even at the favourable end), else `not shown`.
    public static func noWorse(claimed: [Double], baseline: [Double], higherIsBetter: Bool, margin: Double) -> VerdictOutcome {
        let a = Spread(claimed), b = Spread(baseline)
        guard a.count > 0, b.count > 0 else { return a.count > 0 ? .holds : (b.count > 0 ? .reversed : .notShown) }
        let d = (a.mean - b.mean) * (higherIsBetter ? 1 : -1)
        let bound = sigmas * pooledStd(a, b)
        if d - bound > -margin { return .holds }
        if d + bound < -margin { return .reversed }
        return .notShown
    }

    /// The rule of ``noWorse(claimed:baseline:higherIsBetter:margin:)`` in words.
    public static func noWorseRule(_ quantity: String, margin: String, seeds: String) -> String {
        "holds when the difference of mean \(quantity) in the claimed direction minus \(Int(sigmas)) × the pooled sample "
            + "standard deviation over \(seeds) is above −\(margin) (no worse by more than \(margin)); reversed when the difference "
            + "plus \(Int(sigmas)) × the pooled std is below −\(margin); otherwise not shown"
    }

    /// Both parts of a two-part claim: `holds` when every part holds,
    /// `reversed` when any part is reversed, else `not shown`.
    public static func all(_ parts: [VerdictOutcome]) -> VerdictOutcome {
        if parts.contains(.reversed) { return .reversed }
        return parts.allSatisfy { $0 == .holds } ? .holds : .notShown
    }

    /// Power-law rule for noise ∝ B^slope: holds when the least-squares slope of
    /// log(noise) on log(B) is within `tolerance` of `expected`; reversed when it
    /// has the opposite sign; else not shown. Returns the outcome and the slope.
    public static func slope(x: [Double], y: [Double], expected: Double, tolerance: Double) -> (VerdictOutcome, Double) {
        let points = zip(x, y).filter { $0.0 > 0 && $0.1 > 0 && $0.1.isFinite }.map { (log($0.0), log($0.1)) }
        guard points.count >= 2 else { return (.notShown, .nan) }
        let mx = points.reduce(0) { $0 + $1.0 } / Double(points.count), my = points.reduce(0) { $0 + $1.1 } / Double(points.count)
        let sxx = points.reduce(0) { $0 + ($1.0 - mx) * ($1.0 - mx) }, sxy = points.reduce(0) { $0 + ($1.0 - mx) * ($1.1 - my) }
        guard sxx > 0 else { return (.notShown, .nan) }
        let s = sxy / sxx
        if abs(s - expected) <= tolerance { return (.holds, s) }
        if s * expected < 0 { return (.reversed, s) }
        return (.notShown, s)
    }
}

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// `value` with `digits` decimals (`nan`/`inf` as such).
func _fixed(_ value: Double, _ digits: Int) -> String {
    guard value.isFinite else { return "\(value)" }
    var scaled = (value * pow(10, Double(digits))).rounded()
    if scaled == 0 { scaled = 0 }   // no "-0.0"
    let text = String(Int64(scaled).magnitude)
    let padded = String(repeating: "0", count: max(0, digits + 1 - text.count)) + text
    let sign = scaled < 0 ? "-" : ""
    return digits == 0 ? sign + padded : sign + padded.dropLast(digits) + "." + padded.suffix(digits)
}
