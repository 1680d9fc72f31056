// Reading a checkpoint's input standardization strictly: an `input_std` of
// 0, a negative number, NaN or text is a broken file, not "no
// standardization" — evaluating such a model on raw pixels gives a wrong
// accuracy without a word (74 % → 60 % on Fashion-MNIST).

extension InputStandardization {
    /// The standardization recorded in a checkpoint's metadata; nil when it
    /// records none (neither `input_mean` nor `input_std`, as in files saved
    /// by PyTorch).
    ///
    /// - Parameters:
    ///   - metadata: the checkpoint's safetensors metadata.
    ///   - path: names the file in the error.
    /// - Throws: `BatchNormKitError.fileFormat` when only one of the two keys
    ///   is present, a value is not a number, the mean is not finite, or the
    ///   std is not finite and > 0.
    public init?(checkpointMetadata metadata: [String: String], path: String) throws {
        let meanText = metadata[Self.meanKey], stdText = metadata[Self.stdKey]
        if meanText == nil && stdText == nil { return nil }
        func fail(_ reason: String) -> BatchNormKitError { .fileFormat(path: path, reason: "metadata: \(reason)") }
        guard let meanText, let stdText else {
            throw fail("\(meanText == nil ? Self.meanKey : Self.stdKey) is missing while \(meanText == nil ? Self.stdKey : Self.meanKey) is present")
        }
        guard let mean = Float(meanText), mean.isFinite else {
            throw fail("\(Self.meanKey) is \"\(meanText)\", expected a finite number")
        }
        guard let std = Float(stdText), std.isFinite, std > 0 else {
            throw fail("\(Self.stdKey) is \"\(stdText)\", expected a finite number > 0")
        }
        try self.init(mean: mean, std: std)
    }
}
