import ArgumentParser
import BatchNormKit

/// `--model mlp|cnn`: which network `bnkit train` builds.
enum ModelChoice: String, ExpressibleByArgument, CaseIterable {
    /// The seed lesson's network (784 → 256 → 64 → 10); `--norm` and `--placement` apply.
    case mlp
    /// ``CNN``: two Conv-BatchNorm2d-ReLU-MaxPool blocks, Linear-BatchNorm1d-ReLU, Linear; `--norm` applies.
    case cnn
}

/// The network choice of `bnkit train`.
struct ModelOptions: ParsableArguments {
    @Option(help: "The network: mlp (the seed network) or cnn (Conv→BN2d→ReLU→MaxPool ×2 (32, 64 channels), Linear 128→BN1d→ReLU→Linear). --placement applies to mlp only.")
    var model: ModelChoice = .mlp

    /// A freshly initialized network for images `rows × columns` of
    /// `features` values, and its description for the report.
    func makeNetwork(features: Int, rows: Int, columns: Int, batchNorm: Bool, placement: NormPlacement,
                     seed: UInt64, processGroup: ProcessGroup?) throws -> (Layer, String) {
        switch model {
        case .mlp:
            let network = try SeedNetwork(inputSize: features, classes: MNISTDataset.classCount, batchNorm: batchNorm,
                                          placement: placement, seed: seed, processGroup: processGroup)
            return (network, "\(network.architecture)")
        case .cnn:
            guard rows == columns, rows * columns == features else {
                throw BatchNormKitError.invalidArgument(name: "images", value: "\(rows)×\(columns) (\(features) features)",
                                                        requirement: "--model cnn needs square single-channel images")
            }
            let network = try CNN(CNNArchitecture(imageSize: rows, classes: MNISTDataset.classCount,
                                                  normalization: batchNorm ? .batchNorm : .none),
                                  seed: seed, processGroup: processGroup)
            return (network, "CNN \(network.architecture)")
        }
    }
}

/// A checkpoint's network as `bnkit eval` reports it: a ``CNN``'s or the seed
/// network's architecture (see ``describeArchitecture(of:path:)``).
func describeNetwork(of file: SafeTensorsFile, path: String) -> String {
    guard CNNArchitecture.describes(file) else { return describeArchitecture(of: file, path: path) }
    return "CNN " + describeStored(file) {
        (try CNNArchitecture(metadata: file.metadata, path: path), { try CNNArchitecture(inferringFrom: file, path: path) })
    }
}
