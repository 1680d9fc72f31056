import Foundation

/// MNIST or Fashion-MNIST, loaded from a directory in the standard layout:
/// `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
/// `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, each either with a
/// `.gz` suffix (preferred) or uncompressed.
///
/// Images become `Float` in `[0, 1]` (pixel / 255, as PyTorch's `ToTensor()`),
/// flattened to `(count, rows·cols)` row-major; labels become `Int32`.
public struct MNISTDataset: Sendable, Equatable {
    /// Where Debian's `dataset-fashion-mnist` package installs the four `.gz` files.
    public static let defaultDirectory = "/usr/share/datasets/fashion-mnist"

    /// Number of classes; every label is in `0..<classCount`.
    public static let classCount = 10

    /// Fashion-MNIST class names, indexed by label (`classCount` entries).
    public static let classNames = [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ]

    /// One split (train or test).
    public struct Split: Sendable, Equatable {
        /// Number of samples, N.
        public let count: Int
        /// Pixels per image, rows·cols (784 for 28×28).
        public let featureCount: Int
        /// Image height in pixels.
        public let rows: Int
        /// Image width in pixels.
        public let columns: Int
        /// Shape `(count, featureCount)`, row-major; each value is pixel/255 in `[0, 1]`.
        public let images: [Float]
        /// Shape `(count)`; each value in `0..<MNISTDataset.classCount`.
        public let labels: [Int32]
    }

    /// The directory the files were read from.
    public let directory: String
    /// The 60000-sample training split (for the standard sets).
    public let train: Split
    /// The 10000-sample test split (`t10k-*` files).
    public let test: Split

    /// Loads and validates both splits.
    ///
    /// - Parameter directory: a directory holding the four MNIST-layout files.
    /// - Throws: `BatchNormKitError.fileUnreadable` for a missing or
    ///   unreadable file (the message says how to get the data);
    ///   `.fileFormat` for a malformed IDX file, image and label counts that
    ///   differ, a label outside `0..<10`, or test images whose size differs
    ///   from the training images'.
    public init(directory: String = MNISTDataset.defaultDirectory) throws {
        let train = try Self.loadSplit(directory: directory, prefix: "train")
        let test = try Self.loadSplit(directory: directory, prefix: "t10k")
        guard (test.rows, test.columns) == (train.rows, train.columns) else {
            let trainFile = Self.locate("train-images-idx3-ubyte", in: directory) ?? "train images"
            throw BatchNormKitError.fileFormat(
                path: Self.locate("t10k-images-idx3-ubyte", in: directory) ?? directory,
                reason: "images are \(test.rows)×\(test.columns) but \(trainFile) has \(train.rows)×\(train.columns) images")
        }
        self.directory = directory
        self.train = train
        self.test = test
    }

    // MARK: - Loading

    /// Loads `<prefix>-images-idx3-ubyte[.gz]` and `<prefix>-labels-idx1-ubyte[.gz]`.
    static func loadSplit(directory: String, prefix: String) throws -> Split {
        let imagesPath = try requireFile("\(prefix)-images-idx3-ubyte", in: directory)
        let labelsPath = try requireFile("\(prefix)-labels-idx1-ubyte", in: directory)
        let imageFile = try IDXFile(contentsOf: imagesPath, dimensionCount: 3)
        let labelFile = try IDXFile(contentsOf: labelsPath, dimensionCount: 1)

        let count = imageFile.dimensions[0], rows = imageFile.dimensions[1], columns = imageFile.dimensions[2]
        guard count > 0, rows > 0, columns > 0 else {
            throw BatchNormKitError.fileFormat(path: imagesPath, reason: "no pixels: images are \(count)×\(rows)×\(columns)")
        }
        guard labelFile.dimensions[0] == count else {
            throw BatchNormKitError.fileFormat(
                path: labelsPath,
                reason: "has \(labelFile.dimensions[0]) labels but \(imagesPath) has \(count) images")
        }
        if let bad = labelFile.bytes.firstIndex(where: { Int($0) >= classCount }) {
            throw BatchNormKitError.fileFormat(
                path: labelsPath,
                reason: "label \(labelFile.bytes[bad]) at index \(bad) is outside 0..<\(classCount)")
        }

        // Divide (not multiply by 1/255) so values match ToTensor() bit for
        // bit; the plain loop over a pre-sized buffer vectorizes.
        let pixels = imageFile.bytes
        let images = [Float](unsafeUninitializedCapacity: pixels.count) { out, initialized in
            pixels.withUnsafeBufferPointer { source in
                for i in 0..<source.count { out[i] = Float(source[i]) / 255 }
            }
            initialized = pixels.count
        }
        let labels = labelFile.bytes.map { Int32($0) }
        return Split(count: count, featureCount: rows * columns, rows: rows, columns: columns,
                     images: images, labels: labels)
    }

    /// The `.gz` file if present, else the uncompressed one, else nil.
    static func locate(_ name: String, in directory: String) -> String? {
        let base = (directory as NSString).appendingPathComponent(name)
        return [base + ".gz", base].first { FileManager.default.fileExists(atPath: $0) }
    }

    /// `locate`, throwing an actionable error when neither file exists.
    static func requireFile(_ name: String, in directory: String) throws -> String {
        if let path = locate(name, in: directory) { return path }
        let base = (directory as NSString).appendingPathComponent(name)
        throw BatchNormKitError.fileUnreadable(
            path: base + ".gz",
            reason: "missing (nor is there an uncompressed \(name)); `make deps` installs Debian's dataset-fashion-mnist into \(defaultDirectory), or pass `--data DIR` for a directory with the MNIST-layout files")
    }
}
