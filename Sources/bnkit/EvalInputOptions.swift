import ArgumentParser
import BatchNormKit

/// `eval --input-mean M --input-std S`: the input scale of a checkpoint that
/// does not record one (PyTorch's files never do), so it is not silently
/// evaluated on the wrong scale.
struct EvalInputOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Standardize inputs as (x − M)/S; overrides the checkpoint's input_mean.", valueName: "M"))
    var inputMean: Float?
    @Option(help: ArgumentHelp("See --input-mean (e.g. 0.2860 and 0.3530 for Fashion-MNIST's transforms.Normalize).", valueName: "S"))
    var inputStd: Float?

    func validate() throws {
        guard (inputMean == nil) == (inputStd == nil) else {
            throw ValidationError("--input-mean and --input-std go together")
        }
        if let inputMean, let inputStd, !(inputMean.isFinite && inputStd.isFinite && inputStd > 0) {
            throw ValidationError("--input-mean must be finite and --input-std finite and > 0")
        }
    }

    /// The standardization to apply and where it came from, for the report.
    /// A checkpoint with no recorded scale and no options runs on raw pixels
    /// with a warning on stderr that says so.
    func standardization(for file: SafeTensorsFile, path: String) throws -> (InputStandardization?, String) {
        let recorded = try InputStandardization(checkpointMetadata: file.metadata, path: path)
        if let inputMean, let inputStd {
            return (try InputStandardization(mean: inputMean, std: inputStd),
                    recorded == nil ? "from --input-mean/--input-std" : "from --input-mean/--input-std (overriding the checkpoint's)")
        }
        if let recorded { return (recorded, "from the checkpoint") }
        printError("bnkit: warning: \(path) records no input standardization (input_mean, input_std); evaluating on raw pixels in [0, 1]."
                   + " If the model was trained on standardized inputs, pass --input-mean and --input-std.")
        return (nil, "the checkpoint records no scale")
    }
}
