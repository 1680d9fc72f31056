import Foundation
import Testing
@testable import BatchNormKit

/// The PyTorch golden files, located from this source file so the tests work
/// from a clean clone (no bundle lookup needed).
private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

private func fixturePath(_ name: String) -> String { fixtures.appendingPathComponent(name).path }

private func hasFixture(_ name: String) -> Bool { FileManager.default.fileExists(atPath: fixturePath(name)) }

/// A file made of an 8-byte little-endian length, `header` and `data`.
private func file(header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) -> [UInt8] {
    let headerBytes = Array(header.utf8)
    let length = declaredLength ?? UInt64(headerBytes.count)
    return (0..<8).map { UInt8(truncatingIfNeeded: length >> (8 * UInt64($0))) } + headerBytes + data
}

/// Parses `bytes` expecting `.fileFormat` for `path` whose reason contains every string in `mentions`.
private func expectFormatError(_ bytes: [UInt8], mentions: [String] = [], sourceLocation: SourceLocation = #_sourceLocation) {
    let path = "/tmp/case.safetensors"
    do {
        let parsed = try SafeTensorsFile(bytes: bytes, path: path)
        Issue.record("expected a format error, parsed \(parsed.tensors.keys.sorted())", sourceLocation: sourceLocation)
    } catch let BatchNormKitError.fileFormat(errorPath, reason) {
        #expect(errorPath == path, sourceLocation: sourceLocation)
        for mention in mentions {
            #expect(reason.contains(mention), "\(reason) does not mention \(mention)", sourceLocation: sourceLocation)
        }
    } catch {
        Issue.record("expected .fileFormat, got \(error)", sourceLocation: sourceLocation)
    }
}

@Suite("SafeTensors codec")
struct SafeTensorsTests {
    static let sampleFloats: [Float] = [1.5, -0.0, .infinity, -.greatestFiniteMagnitude, .leastNonzeroMagnitude, .nan]

    /// A file exercising every element width, scalars, empty tensors and escapes.
    static func sample() throws -> SafeTensorsFile {
        var file = SafeTensorsFile()
        file.tensors["weights"] = try SafeTensor(floats: sampleFloats, shape: [2, 3])
        file.tensors["doubles"] = try SafeTensor(doubles: [.pi, -1e300], shape: [2])
        file.tensors["counter"] = try SafeTensor(int64s: [.min], shape: [])
        file.tensors["labels"] = try SafeTensor(int64s: [0, 9, .max], shape: [3])
        file.tensors["ints"] = try SafeTensor(int32s: [-7, .max, .min, 0], shape: [2, 2])
        file.tensors["bytes"] = try SafeTensor(dtype: .u8, shape: [3], bytes: [0, 127, 255])
        file.tensors["mask"] = try SafeTensor(dtype: .bool, shape: [2], bytes: [1, 0])
        file.tensors["half"] = try SafeTensor(dtype: .f16, shape: [1], bytes: [0x00, 0x3C])
        file.tensors["empty"] = try SafeTensor(floats: [], shape: [0, 3])
        file.tensors["name with \"quotes\", é and \u{1}"] = try SafeTensor(floats: [42], shape: [1, 1])
        file.metadata = ["format": "pt", "note": "line\nbreak\t\"quoted\" \\ é"]
        return file
    }

    @Test func roundTripsSeveralDTypes() throws {
        let original = try Self.sample()
        let bytes = try original.serialized()
        let parsed = try SafeTensorsFile(bytes: bytes, path: "memory")
        #expect(parsed == original)
        #expect(try parsed.tensors["weights"]?.floats.map(\.bitPattern) == Self.sampleFloats.map(\.bitPattern))
        #expect(try parsed.tensors["doubles"]?.doubles == [.pi, -1e300])
        #expect(try parsed.tensors["counter"]?.int64s == [.min])
        #expect(parsed.tensors["counter"]?.shape == [])
        #expect(try parsed.tensors["labels"]?.int64s == [0, 9, .max])
        #expect(try parsed.tensors["ints"]?.int32s == [-7, .max, .min, 0])
        #expect(parsed.tensors["empty"]?.shape == [0, 3])
        #expect(parsed.metadata["note"] == "line\nbreak\t\"quoted\" \\ é")
        // Serialization is deterministic, and re-serializing a parsed file is the identity.
        #expect(try parsed.serialized() == bytes)
    }

    @Test func layoutMatchesTheReferenceWriter() throws {
        let bytes = try Self.sample().serialized()
        let length = bytes[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        #expect(length % 8 == 0, "the data section starts 8-byte aligned")
        let header = try #require(
            try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + length)])) as? [String: Any])
        var previousRank = Int.max
        var previousEnd = 0
        let entries = header.filter { $0.key != "__metadata__" }
            .compactMap { name, value -> (String, SafeTensorsDType, Int, Int)? in
                guard let entry = value as? [String: Any], let dtype = entry["dtype"] as? String,
                      let offsets = entry["data_offsets"] as? [Int] else { return nil }
                return (name, SafeTensorsDType(rawValue: dtype)!, offsets[0], offsets[1])
            }
            .sorted { $0.2 < $1.2 || ($0.2 == $1.2 && $0.3 < $1.3) }
        #expect(entries.count == 10)
        for (name, dtype, begin, end) in entries {
            #expect(begin == previousEnd, "contiguous data")
            #expect(begin % dtype.byteSize == 0, "\(name) is aligned to its element size")
            #expect(dtype.referenceRank <= previousRank, "widest dtypes first")
            previousRank = dtype.referenceRank
            previousEnd = end
        }
        #expect(previousEnd == bytes.count - 8 - length)
        // Compact header, metadata first, escapes as serde_json writes them.
        let text = String(decoding: bytes[8..<(8 + length)], as: UTF8.self)
        #expect(text.hasPrefix(#"{"__metadata__":{"format":"pt","note":"line\nbreak\t\"quoted\" \\ é"},"counter":{"dtype":"I64","shape":[],"data_offsets":[0,8]},"#))
        #expect(text.contains(#""name with \"quotes\", é and \u0001":{"#))
    }

    @Test func emptyFileRoundTrips() throws {
        let bytes = try SafeTensorsFile().serialized()
        #expect(bytes == [8, 0, 0, 0, 0, 0, 0, 0] + Array("{}      ".utf8))
        #expect(try SafeTensorsFile(bytes: bytes, path: "empty") == SafeTensorsFile())
    }

    @Test func typedAccessInitializersAndWriterCheckTheirArguments() throws {
        let floats = try SafeTensor(floats: [1, 2], shape: [2])
        #expect(throws: BatchNormKitError.self) { try floats.int64s }
        #expect(throws: BatchNormKitError.self) { try floats.doubles }
        do {
            _ = try floats.int64s
        } catch let BatchNormKitError.invalidArgument(name, value, _) {
            #expect(name == "dtype" && value == "F32")
        }
        #expect(throws: BatchNormKitError.self) { try SafeTensor(floats: [1, 2, 3], shape: [2, 2]) }
        #expect(throws: BatchNormKitError.self) { try SafeTensor(int64s: [], shape: [-1]) }
        #expect(throws: BatchNormKitError.self) { try SafeTensor(dtype: .f32, shape: [3], bytes: [0, 0, 0, 0]) }
        #expect(throws: BatchNormKitError.self) { try SafeTensor(floats: [], shape: [Int.max, 2, 0]) }

        var broken = floats
        broken.shape = [3]
        #expect(throws: BatchNormKitError.self) { try broken.floats }
        #expect(throws: BatchNormKitError.self) { try SafeTensorsFile(tensors: ["b": broken]).serialized() }
        #expect(throws: BatchNormKitError.self) { try SafeTensorsFile(tensors: ["__metadata__": floats]).serialized() }
    }

    @Test func atomicWriteReplacesTheFileAndLeavesNoTemporaryFile() throws {
        let directory = makeTemporaryDirectory("SafeTensorsTests")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/model.safetensors"

        let first = try Self.sample()
        try first.write(to: path)
        #expect(try SafeTensorsFile(contentsOf: path) == first)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["model.safetensors"])

        // Overwriting keeps the permission bits of the replaced file.
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        var second = SafeTensorsFile()
        second.tensors["x"] = try SafeTensor(floats: [7], shape: [1])
        try second.write(to: path)
        #expect(try SafeTensorsFile(contentsOf: path) == second)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["model.safetensors"])
        let permissions = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(permissions == 0o600)

        // A failed save (target is a directory) throws, keeps the old contents around it, and cleans up.
        try FileManager.default.createDirectory(atPath: directory + "/taken", withIntermediateDirectories: false)
        #expect(throws: BatchNormKitError.self) { try second.write(to: directory + "/taken") }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).sorted() == ["model.safetensors", "taken"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory + "/taken").isEmpty)

        // A missing directory throws.
        #expect(throws: BatchNormKitError.self) { try second.write(to: directory + "/missing/model.safetensors") }
    }

    @Test func unreadableFilesThrowFileUnreadable() {
        #expect(throws: BatchNormKitError.fileUnreadable(path: "/nonexistent/x.safetensors",
                                                         reason: "cannot open: No such file or directory")) {
            try SafeTensorsFile(contentsOf: "/nonexistent/x.safetensors")
        }
        do {
            _ = try SafeTensorsFile(contentsOf: NSTemporaryDirectory())
            Issue.record("reading a directory succeeded")
        } catch BatchNormKitError.fileUnreadable {
        } catch {
            Issue.record("expected fileUnreadable, got \(error)")
        }
    }

    @Test func malformedFilesThrowFileFormat() {
        let f32 = #""dtype":"F32""#
        let four = [UInt8](repeating: 0, count: 4)

        // Truncated or inconsistent length field.
        expectFormatError([], mentions: ["0 bytes"])
        expectFormatError([2, 0, 0, 0, 0, 0, 0], mentions: ["7 bytes"])
        expectFormatError(file(header: "{}", declaredLength: 3), mentions: ["header length 3"])
        expectFormatError(file(header: "{}", declaredLength: .max), mentions: ["\(UInt64.max)"])
        expectFormatError(file(header: "{}", declaredLength: 1 << 63))
        expectFormatError(file(header: ""), mentions: ["'{'"])
        expectFormatError(file(header: " {}"), mentions: ["'{'"])
        expectFormatError(file(header: "[]"), mentions: ["'{'"])

        // Not JSON, not an object, not UTF-8, too deep.
        expectFormatError(file(header: #"{"a":"#), mentions: ["JSON"])
        expectFormatError(file(header: #"{"a":1} x"#), mentions: ["JSON"])
        expectFormatError(file(header: "{" + String(repeating: "[", count: 10_000)), mentions: ["JSON"])
        expectFormatError([3, 0, 0, 0, 0, 0, 0, 0, UInt8(ascii: "{"), 0xFF, UInt8(ascii: "}")], mentions: ["JSON"])
        expectFormatError(file(header: #"{"w":{"dtype":"F32","shape":[1e400],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]),
                          mentions: ["JSON"])

        // Entries.
        expectFormatError(file(header: #"{"w":3}"#), mentions: ["\"w\"", "not a JSON object"])
        expectFormatError(file(header: #"{"w":{"shape":[1],"data_offsets":[0,4]}}"#, data: four), mentions: ["\"w\"", "dtype"])
        expectFormatError(file(header: #"{"w":{\#(f32),"data_offsets":[0,4]}}"#, data: four), mentions: ["\"w\"", "shape"])
        expectFormatError(file(header: #"{"w":{\#(f32),"shape":[1]}}"#, data: four), mentions: ["\"w\"", "data_offsets"])
        expectFormatError(file(header: #"{"w":{"dtype":"F128","shape":[1],"data_offsets":[0,4]}}"#, data: four),
                          mentions: ["\"w\"", "unknown dtype \"F128\""])
        expectFormatError(file(header: #"{"w":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}}"#, data: four),
                          mentions: ["unknown dtype"])
        expectFormatError(file(header: #"{"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}"#, data: four), mentions: ["dtype"])
        for shape in ["[-1]", "[1.5]", "[1.0]", "[true]", "1", "[\"1\"]", "[null]", "[18446744073709551615]"] {
            expectFormatError(file(header: #"{"w":{\#(f32),"shape":\#(shape),"data_offsets":[0,4]}}"#, data: four),
                              mentions: ["\"w\""])
        }
        for offsets in ["[0]", "[0,4,4]", "[-4,0]", "[0,4.0]", "[false,4]", "{}"] {
            expectFormatError(file(header: #"{"w":{\#(f32),"shape":[1],"data_offsets":\#(offsets)}}"#, data: four),
                              mentions: ["\"w\"", "data_offsets"])
        }
        expectFormatError(file(header: #"{"w":{\#(f32),"shape":[1],"data_offsets":[0,8]}}"#, data: four),
                          mentions: ["\"w\"", "past the 4-byte data section"])
        expectFormatError(file(header: #"{"w":{\#(f32),"shape":[1],"data_offsets":[4,0]}}"#, data: four),
                          mentions: ["\"w\"", "[4, 0]"])
        expectFormatError(file(header: #"{"w":{\#(f32),"shape":[2],"data_offsets":[0,4]}}"#, data: four),
                          mentions: ["\"w\"", "needs 8 bytes", "span 4"])
        expectFormatError(file(header: #"{"w":{"dtype":"I64","shape":[1],"data_offsets":[0,4]}}"#, data: four),
                          mentions: ["\"w\"", "needs 8 bytes"])
        expectFormatError(file(header: #"{"w":{\#(f32),"shape":[4611686018427387904,4611686018427387904],"data_offsets":[0,4]}}"#,
                               data: four), mentions: ["\"w\"", "too large"])
        expectFormatError(file(header: #"{"w":{\#(f32),"shape":[2305843009213693952],"data_offsets":[0,4]}}"#,
                               data: four), mentions: ["\"w\"", "too large"])

        // Coverage of the data section.
        expectFormatError(file(header: #"{"a":{\#(f32),"shape":[1],"data_offsets":[0,4]},"b":{\#(f32),"shape":[1],"data_offsets":[0,4]}}"#,
                               data: four), mentions: ["overlaps"])
        expectFormatError(file(header: #"{"a":{\#(f32),"shape":[1],"data_offsets":[4,8]}}"#, data: four + four),
                          mentions: ["\"a\"", "belong to no tensor"])
        expectFormatError(file(header: #"{"a":{\#(f32),"shape":[1],"data_offsets":[0,4]}}"#, data: four + [1]),
                          mentions: ["last 1 of 5"])
        expectFormatError(file(header: "{}", data: [0]), mentions: ["belong to no tensor"])

        // Metadata must map strings to strings.
        expectFormatError(file(header: #"{"__metadata__":{"epoch":3}}"#), mentions: ["epoch"])
        expectFormatError(file(header: #"{"__metadata__":[]}"#), mentions: ["__metadata__"])
    }

    @Test func acceptsWhatTheFormatAllows() throws {
        // Space padding, extra entry keys, null metadata, zero-size tensors anywhere.
        let header = #"{"__metadata__":null,"z":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"#
            + #""w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":true},"e":{"dtype":"U8","shape":[2,0],"data_offsets":[4,4]}}   "#
        let parsed = try SafeTensorsFile(bytes: file(header: header, data: [0, 0, 0x80, 0x3F]), path: "ok")
        #expect(try parsed.tensors["w"]?.floats == [1])
        #expect(parsed.tensors["z"]?.shape == [0])
        #expect(parsed.tensors["e"]?.bytes == [])
        #expect(parsed.metadata.isEmpty)
    }

    @Test func arbitraryCorruptionNeverTraps() throws {
        let valid = try Self.sample().serialized()
        func check(_ bytes: [UInt8]) {
            do {
                _ = try SafeTensorsFile(bytes: bytes, path: "fuzz")
            } catch BatchNormKitError.fileFormat {
            } catch {
                Issue.record("unexpected error \(error)")
            }
        }
        for length in 0..<valid.count { check(Array(valid[0..<length])) }
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(truncatingIfNeeded: state >> 33)
        }
        let headerEnd = min(valid.count, 8 + valid[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) })
        for _ in 0..<3_000 {
            var bytes = valid
            for _ in 0..<(1 + next() % 4) {
                let index = next() % headerEnd
                let replacements: [UInt8] = [0, 0xFF, UInt8(ascii: "\""), UInt8(ascii: "9"), UInt8(ascii: "-"),
                                             UInt8(ascii: "]"), UInt8(ascii: "{"), UInt8(truncatingIfNeeded: next())]
                bytes[index] = replacements[next() % replacements.count]
            }
            check(bytes)
        }
    }

    // MARK: - PyTorch-written fixtures (Scripts/make_fixtures.py)

    @Test(.enabled(if: hasFixture("seed_state_dict.safetensors")))
    func seedStateDictMatchesTheSeedNetwork() throws {
        let file = try SafeTensorsFile(contentsOf: fixturePath("seed_state_dict.safetensors"))
        var expected: [String: (SafeTensorsDType, [Int])] = [:]
        for (index, input, output) in [(0, 784, 256), (3, 256, 64), (6, 64, 10)] {
            expected["layers.\(index).weight"] = (.f32, [output, input])
            expected["layers.\(index).bias"] = (.f32, [output])
            if index < 6 {
                for buffer in ["weight", "bias", "running_mean", "running_var"] {
                    expected["layers.\(index + 1).\(buffer)"] = (.f32, [output])
                }
                expected["layers.\(index + 1).num_batches_tracked"] = (.i64, [])
            }
        }
        #expect(Set(file.tensors.keys) == Set(expected.keys))
        for (name, (dtype, shape)) in expected {
            #expect(file.tensors[name]?.dtype == dtype, "\(name)")
            #expect(file.tensors[name]?.shape == shape, "\(name)")
        }
        #expect(try file.tensors["layers.1.num_batches_tracked"]?.int64s == [20])
        let runningVariance = try #require(try file.tensors["layers.4.running_var"]?.floats)
        #expect(runningVariance.allSatisfy { $0.isFinite && $0 > 0 } && runningVariance.contains { $0 != 1 })
    }

    @Test(.enabled(if: hasFixture("seed_eval.safetensors")))
    func seedEvalFixtureDecodes() throws {
        let file = try SafeTensorsFile(contentsOf: fixturePath("seed_eval.safetensors"))
        #expect(file.tensors["x"]?.shape == [16, 784])
        let probabilities = try #require(try file.tensors["probabilities"]?.floats)
        for row in 0..<16 {
            let sum = probabilities[(row * 10)..<(row * 10 + 10)].reduce(0, +)
            #expect(abs(sum - 1) < 1e-5)
        }
    }

    @Test(.enabled(if: hasFixture("batchnorm1d_2d.safetensors")))
    func batchNormFixturesHaveTheDocumentedTensors() throws {
        for (name, features, input) in [("batchnorm1d_2d", 5, [7, 5]), ("batchnorm1d_3d", 3, [4, 3, 5])] {
            let file = try SafeTensorsFile(contentsOf: fixturePath(name + ".safetensors"))
            for key in ["x", "dy", "x2", "x3", "y_train", "dx_train", "y_eval", "dx_eval"] {
                #expect(file.tensors[key]?.shape == input, "\(name) \(key)")
            }
            for key in ["weight", "bias", "dweight_train", "dbias_train", "dweight_eval", "dbias_eval",
                        "running_mean_1", "running_var_1", "running_mean_3", "running_var_3"] {
                #expect(file.tensors[key]?.shape == [features], "\(name) \(key)")
            }
            #expect(try file.tensors["num_batches_tracked_3"]?.int64s == [3])
            #expect(file.metadata["momentum"] == "0.1")
        }
        let cumulative = try SafeTensorsFile(contentsOf: fixturePath("batchnorm1d_cumulative.safetensors"))
        #expect(try cumulative.tensors["num_batches_tracked_3"]?.int64s == [3])
        #expect(cumulative.tensors["x3"]?.shape == [6, 4])
    }

    @Test(.enabled(if: hasFixture("seed_sgd.safetensors")))
    func sgdFixturesShareTheSeedNetworkNames() throws {
        let stateNames = try Set(SafeTensorsFile(contentsOf: fixturePath("seed_state_dict.safetensors")).tensors.keys)
        let sgd = try SafeTensorsFile(contentsOf: fixturePath("seed_sgd.safetensors"))
        let names = Set(sgd.tensors.keys)
        #expect(stateNames.allSatisfy { names.contains("init." + $0) && names.contains("step2." + $0) })
        #expect(try sgd.tensors["labels"]?.int64s.allSatisfy { (0..<10).contains($0) } == true)
        #expect(sgd.tensors["loss_1"]?.shape == [])
        #expect(names.filter { $0.hasPrefix("grad1.") }.count == 10)
        #expect(try sgd.tensors["step2.layers.4.num_batches_tracked"]?.int64s == [2])
        for variant in ["seed_sgd_nesterov", "seed_sgd_dampening"] {
            let file = try SafeTensorsFile(contentsOf: fixturePath(variant + ".safetensors"))
            #expect(stateNames.allSatisfy { file.tensors["step2." + $0] != nil }, "\(variant)")
            #expect(file.metadata["init_from"] == "seed_sgd.safetensors")
        }
    }

    /// Our writer reproduces `safetensors.torch.save_file` byte for byte.
    @Test(.enabled(if: hasFixture("seed_state_dict.safetensors")))
    func reserializingTorchFilesIsByteIdentical() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: fixtures.path)
            .filter { $0.hasSuffix(".safetensors") }.sorted()
        #expect(!names.isEmpty)
        for name in names {
            let original = Array(try Data(contentsOf: fixtures.appendingPathComponent(name)))
            let parsed = try SafeTensorsFile(bytes: original, path: name)
            #expect(try parsed.serialized() == original, "\(name)")
        }
    }
}
