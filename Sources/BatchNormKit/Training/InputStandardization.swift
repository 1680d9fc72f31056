/// Standardizes every input feature with one mean and standard deviation
/// taken from the training set: x' = (x − mean) / std — what
/// `transforms.Normalize((0.2860,), (0.3530,))` does for Fashion-MNIST.
///
/// BatchNorm re-centres the first Linear's *outputs*, but the first layer's
/// weight gradients still scale with its raw inputs; pixels in [0, 1] with
/// mean 0.29 give the seed recipe (lr 0.1, momentum 0.9) noticeably noisier
/// final weights (PyTorch, 3 seeds: 87.95% raw vs 88.66% standardized test
/// accuracy). The statistics come from the training split only and travel in
/// a checkpoint's metadata, so evaluation applies exactly the same map.
public struct InputStandardization: Sendable, Equatable {
    /// Subtracted from every feature.
    public var mean: Float
    /// Every centred feature is divided by this; > 0.
    public var std: Float

    /// Metadata keys in a checkpoint.
    public static let meanKey = "input_mean", stdKey = "input_std"

    /// A given standardization; throws unless mean is finite and std finite and > 0.
    public init(mean: Float, std: Float) throws {
        guard mean.isFinite, std.isFinite, std > 0 else {
            throw BatchNormKitError.invalidArgument(name: "input standardization", value: "mean \(mean), std \(std)",
                                                    requirement: "mean must be finite and std finite and > 0")
        }
        self.mean = mean
        self.std = std
    }

    /// Mean and (population) standard deviation over every value of `samples`,
    /// accumulated in Double.
    public init(fittedTo samples: LabeledSamples) throws {
        var sum = 0.0, sumSquares = 0.0
        samples.features.withUnsafeBufferPointer { p in
            for v in p { let d = Double(v); sum += d; sumSquares += d * d }
        }
        let n = Double(max(samples.features.count, 1))
        let mean = sum / n
        let variance = max(0, sumSquares / n - mean * mean)   // values in [0, 1]: no cancellation worth a shift
        try self.init(mean: Float(mean), std: Float(variance.squareRoot()))
    }

    /// The standardization a checkpoint recorded, or nil when it has none
    /// (a file written by PyTorch, or a model trained on raw inputs).
    public init?(metadata: [String: String]) {
        guard let m = metadata[Self.meanKey].flatMap(Float.init), let s = metadata[Self.stdKey].flatMap(Float.init),
              let value = try? InputStandardization(mean: m, std: s) else { return nil }
        self = value
    }

    /// The metadata entries that record this standardization.
    public var metadata: [String: String] { [Self.meanKey: "\(mean)", Self.stdKey: "\(std)"] }

    /// `samples` with every feature mapped to (x − mean)/std; labels unchanged.
    public func apply(to samples: LabeledSamples) throws -> LabeledSamples {
        let scale = 1 / std, shift = mean
        let features = samples.features.map { ($0 - shift) * scale }
        return try LabeledSamples(features: features, labels: samples.labels, featureCount: samples.featureCount)
    }
}
