import Foundation
import Testing
@testable import BatchNormKit

/// IDXFile parsing/validation and MNISTDataset loading, on small generated
/// files (raw and gzip) plus, when installed, the real Fashion-MNIST.
@Suite final class IDXTests {
    // MARK: - Fixtures

    /// A fresh directory per test, so parallel tests never share files.
    let directory = makeTemporaryDirectory("IDXTests")

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }

    /// Three 2×3 images whose bytes cover 0 and 255, shape (3, 2, 3).
    static let pixels: [UInt8] = [0, 1, 2, 3, 4, 5, 10, 20, 30, 40, 50, 60, 127, 128, 200, 250, 254, 255]
    /// Header for `pixels`: magic 0x00000803, sizes 3, 2, 3.
    static let imageHeader: [UInt8] = [0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 3]

    enum Kind { case format, unreadable }

    /// Runs `body`, requiring a BatchNormKitError of `kind` whose description
    /// contains every string in `mentions`; returns the description.
    @discardableResult
    func expectError(_ kind: Kind, mentions: [String], sourceLocation: SourceLocation = #_sourceLocation,
                     _ body: () throws -> Void) -> String {
        do {
            try body()
            Issue.record("expected a \(kind) error, nothing was thrown", sourceLocation: sourceLocation)
        } catch let error as BatchNormKitError {
            switch (kind, error) {
            case (.format, .fileFormat), (.unreadable, .fileUnreadable): break
            default: Issue.record("expected a \(kind) error, got \(error)", sourceLocation: sourceLocation)
            }
            for text in mentions {
                #expect(error.description.contains(text), "\(error) should mention \(text)", sourceLocation: sourceLocation)
            }
            return error.description
        } catch {
            Issue.record("unexpected error type: \(error)", sourceLocation: sourceLocation)
        }
        return ""
    }

    /// Writes a complete small dataset (gzip train, raw test) into `directory`.
    func writeDataset(trainLabels: [UInt8] = [0, 9, 3], testRows: Int = 2) throws {
        try IDXFile.write(dimensions: [3, 2, 3], bytes: Self.pixels, to: path("train-images-idx3-ubyte.gz"), compressed: true)
        try IDXFile.write(dimensions: [trainLabels.count], bytes: trainLabels, to: path("train-labels-idx1-ubyte.gz"), compressed: true)
        let testPixels = [UInt8](repeating: 7, count: 2 * testRows * 3)
        try IDXFile.write(dimensions: [2, testRows, 3], bytes: testPixels, to: path("t10k-images-idx3-ubyte"), compressed: false)
        try IDXFile.write(dimensions: [2], bytes: [1, 2], to: path("t10k-labels-idx1-ubyte"), compressed: false)
    }

    // MARK: - IDXFile: good files

    @Test func imagesRoundTripRawAndGzip() throws {
        for compressed in [false, true] {
            let file = path(compressed ? "images.gz" : "images")
            try IDXFile.write(dimensions: [3, 2, 3], bytes: Self.pixels, to: file, compressed: compressed)
            let onDisk = try [UInt8](Data(contentsOf: URL(fileURLWithPath: file)))
            // The writer must really produce both encodings, or the reader is only half tested.
            if compressed {
                #expect(onDisk.prefix(2) == [0x1F, 0x8B])
            } else {
                #expect(onDisk == Self.imageHeader + Self.pixels)
            }
            let idx = try IDXFile(contentsOf: file, dimensionCount: 3)
            #expect(idx.path == file)
            #expect(idx.dimensions == [3, 2, 3])
            #expect(idx.bytes == Self.pixels)
        }
    }

    @Test func labelsRoundTrip() throws {
        let labels: [UInt8] = [9, 0, 4, 1, 7]
        try IDXFile.write(dimensions: [5], bytes: labels, to: path("labels.gz"), compressed: true)
        let idx = try IDXFile(contentsOf: path("labels.gz"), dimensionCount: 1)
        #expect(idx.dimensions == [5])
        #expect(idx.bytes == labels)
    }

    // MARK: - IDXFile: malformed files

    @Test func truncatedPayloadIsRejected() throws {
        for compressed in [false, true] {
            let name = compressed ? "short.gz" : "short"
            try IDXFile.writeFile(Self.imageHeader + Self.pixels.prefix(10), to: path(name), compressed: compressed)
            expectError(.format, mentions: [name, "truncated", "3×2×3 = 18", "file has 10"]) {
                _ = try IDXFile(contentsOf: path(name))
            }
        }
    }

    @Test func truncatedHeaderIsRejected() throws {
        try IDXFile.writeFile(Array(Self.imageHeader.prefix(9)), to: path("header"), compressed: false)
        expectError(.format, mentions: ["header", "truncated", "3 dimensions"]) {
            _ = try IDXFile(contentsOf: path("header"))
        }
    }

    @Test func extraBytesAreRejected() throws {
        for compressed in [false, true] {
            let name = compressed ? "long.gz" : "long"
            try IDXFile.writeFile(Self.imageHeader + Self.pixels + [1, 2, 3, 4, 5], to: path(name), compressed: compressed)
            expectError(.format, mentions: [name, "5 extra bytes", "18"]) {
                _ = try IDXFile(contentsOf: path(name))
            }
        }
    }

    @Test func badMagicIsRejected() throws {
        try IDXFile.writeFile([0x12, 0x34, 8, 3] + Self.imageHeader.dropFirst(4) + Self.pixels, to: path("magic"), compressed: false)
        expectError(.format, mentions: ["magic", "0x12340803"]) {
            _ = try IDXFile(contentsOf: path("magic"))
        }
    }

    @Test func unsupportedTypeCodeIsRejected() throws {
        try IDXFile.writeFile([0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0, 0], to: path("floats"), compressed: false)
        expectError(.format, mentions: ["floats", "0x0D", "float32"]) {
            _ = try IDXFile(contentsOf: path("floats"))
        }
    }

    @Test func wrongDimensionCountForRoleIsRejected() throws {
        try IDXFile.write(dimensions: [4], bytes: [1, 2, 3, 4], to: path("labels-as-images"), compressed: false)
        expectError(.format, mentions: ["labels-as-images", "expected 3 dimensions", "declares 1"]) {
            _ = try IDXFile(contentsOf: path("labels-as-images"), dimensionCount: 3)
        }
    }

    @Test func overflowingSizesAreRejected() throws {
        try IDXFile.writeFile([0, 0, 8, 3] + [UInt8](repeating: 0xFF, count: 12), to: path("huge"), compressed: false)
        expectError(.format, mentions: ["huge", "4294967295×4294967295×4294967295"]) {
            _ = try IDXFile(contentsOf: path("huge"))
        }
    }

    @Test func corruptGzipIsRejected() throws {
        // Flip the CRC in the gzip trailer: the data inflates fine, the check fails.
        try IDXFile.write(dimensions: [3, 2, 3], bytes: Self.pixels, to: path("crc.gz"), compressed: true)
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path("crc.gz"))))
        bytes[bytes.count - 8] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: path("crc.gz")))
        expectError(.format, mentions: ["crc.gz", "corrupt gzip", "incorrect data check"]) {
            _ = try IDXFile(contentsOf: path("crc.gz"))
        }

        // A gzip header followed by garbage deflate data.
        let garbage: [UInt8] = [0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3] + [UInt8](repeating: 0xFF, count: 40)
        try Data(garbage).write(to: URL(fileURLWithPath: path("garbage.gz")))
        expectError(.format, mentions: ["garbage.gz", "zlib"]) {
            _ = try IDXFile(contentsOf: path("garbage.gz"))
        }

        // A gzip file cut in half.
        try IDXFile.write(dimensions: [3, 2, 3], bytes: Self.pixels, to: path("cut.gz"), compressed: true)
        let whole = try Data(contentsOf: URL(fileURLWithPath: path("cut.gz")))
        try whole.prefix(whole.count / 2).write(to: URL(fileURLWithPath: path("cut.gz")))
        expectError(.format, mentions: ["cut.gz", "unexpected end of file"]) {
            _ = try IDXFile(contentsOf: path("cut.gz"))
        }
    }

    @Test func missingFileIsUnreadable() {
        expectError(.unreadable, mentions: ["no-such-file.gz", "No such file"]) {
            _ = try IDXFile(contentsOf: path("no-such-file.gz"))
        }
    }

    // MARK: - MNISTDataset

    @Test func smallDatasetLoads() throws {
        try writeDataset()
        // A raw decoy next to the .gz must be ignored: .gz is preferred.
        try IDXFile.write(dimensions: [1], bytes: [5], to: path("train-labels-idx1-ubyte"), compressed: false)
        let data = try MNISTDataset(directory: directory)
        #expect(data.train.count == 3)
        #expect(data.train.featureCount == 6)
        #expect(data.train.rows == 2)
        #expect(data.train.columns == 3)
        #expect(data.train.images == Self.pixels.map { Float($0) / 255 })
        #expect(data.train.labels == [0, 9, 3])
        #expect(data.test.count == 2)
        #expect(data.test.labels == [1, 2])
        #expect(data.test.images.allSatisfy { $0 == Float(7) / 255 })
    }

    @Test func labelCountMismatchIsRejected() throws {
        try writeDataset(trainLabels: [0, 1])
        expectError(.format, mentions: ["train-labels-idx1-ubyte.gz", "2 labels", "train-images-idx3-ubyte.gz", "3 images"]) {
            _ = try MNISTDataset(directory: directory)
        }
    }

    @Test func labelTenIsRejected() throws {
        try writeDataset(trainLabels: [0, 10, 3])
        expectError(.format, mentions: ["train-labels-idx1-ubyte.gz", "label 10 at index 1"]) {
            _ = try MNISTDataset(directory: directory)
        }
    }

    @Test func imageSizeMismatchBetweenSplitsIsRejected() throws {
        try writeDataset(testRows: 4)
        expectError(.format, mentions: ["t10k-images-idx3-ubyte", "4×3", "2×3"]) {
            _ = try MNISTDataset(directory: directory)
        }
    }

    @Test func missingDatasetFileSaysHowToGetIt() throws {
        try writeDataset()
        try FileManager.default.removeItem(atPath: path("t10k-labels-idx1-ubyte"))
        expectError(.unreadable, mentions: ["t10k-labels-idx1-ubyte.gz", "make deps", "dataset-fashion-mnist", "--data"]) {
            _ = try MNISTDataset(directory: directory)
        }
    }

    // MARK: - Real Fashion-MNIST (when Debian's package is installed)

    @Test(.enabled(if: FileManager.default.fileExists(
        atPath: MNISTDataset.defaultDirectory + "/train-images-idx3-ubyte.gz")))
    func realFashionMNISTLoads() throws {
        let data = try MNISTDataset()
        #expect(data.train.count == 60000)
        #expect(data.test.count == 10000)
        #expect(data.train.featureCount == 784)
        #expect(data.test.featureCount == 784)
        #expect(data.train.images.count == 60000 * 784)
        #expect(data.test.labels.count == 10000)
        var perClass = [Int](repeating: 0, count: MNISTDataset.classCount)
        for label in data.train.labels { perClass[Int(label)] += 1 }
        #expect(perClass == [Int](repeating: 6000, count: 10))
        for split in [data.train, data.test] {
            #expect(split.images.min() == 0)
            #expect(split.images.max() == 1)
        }
        #expect(MNISTDataset.classNames.count == MNISTDataset.classCount)
    }
}
