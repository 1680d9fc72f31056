import Foundation
import Testing
import BatchNormReference
@testable import BatchNormKit

// Deterministic mutation fuzzing of every file parser: valid files are
// mutated (bit flips, interesting bytes and integers, truncation, extension,
// deleted and repeated ranges, JSON tokens of the safetensors header rewritten)
// and each result must either parse or throw a BatchNormKitError — never
// crash, never throw anything else. A crash kills the test run, so a red CI
// names the input's seed. `make fuzz` runs the same entry points under
// libFuzzer (coverage-guided, unbounded); this suite keeps a fixed budget.

/// Byte-level mutations, reproducible from a seed.
struct ByteMutator {
    var rng: ReferenceRandom

    mutating func below(_ n: Int) -> Int { n <= 1 ? 0 : Int(rng.next() % UInt64(n)) }

    static let interestingBytes: [UInt8] = [0, 1, 0x7F, 0x80, 0xFF, 8, 0x0D, 0x22, 0x7B, 0x7D]
    static let interestingWords: [UInt64] = [0, 1, 0xFF, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF,
                                             0x7FFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFF, 1 << 40]

    /// One to three mutations of `bytes`.
    mutating func mutate(_ bytes: [UInt8]) -> [UInt8] {
        var b = bytes
        for _ in 0...below(3) {
            switch below(7) {
            case 0 where !b.isEmpty:                       // flip a bit
                b[below(b.count)] ^= 1 << UInt8(below(8))
            case 1 where !b.isEmpty:                       // an interesting byte
                b[below(b.count)] = Self.interestingBytes[below(Self.interestingBytes.count)]
            case 2 where !b.isEmpty:                       // an interesting 4- or 8-byte integer, either endianness
                let width = below(2) == 0 ? 4 : 8, at = below(b.count)
                let value = Self.interestingWords[below(Self.interestingWords.count)]
                let littleEndian = below(2) == 0
                for i in 0..<width where at + i < b.count {
                    b[at + i] = UInt8(truncatingIfNeeded: value >> UInt64(8 * (littleEndian ? i : width - 1 - i)))
                }
            case 3:                                        // truncate
                b.removeLast(below(b.count + 1))
            case 4:                                        // extend
                b += (0..<(1 + below(64))).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            case 5 where !b.isEmpty:                       // delete a range
                let at = below(b.count)
                b.removeSubrange(at..<min(b.count, at + 1 + below(16)))
            case 6 where !b.isEmpty:                       // repeat a range
                let at = below(b.count)
                b.insert(contentsOf: b[at..<min(b.count, at + 1 + below(16))], at: at)
            default:
                b.append(UInt8(truncatingIfNeeded: rng.next()))
            }
        }
        return b
    }
}

@Suite("Parser fuzzing: every mutated file parses or throws a typed error")
final class ParserFuzzTests {
    let directory = makeTemporaryDirectory("ParserFuzzTests")

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    /// Counts outcomes and records anything that is neither success nor BatchNormKitError.
    struct Tally { var parsed = 0, rejected = 0 }

    func attempt(_ tally: inout Tally, _ what: String, _ body: () throws -> Void) {
        do { try body(); tally.parsed += 1 } catch is BatchNormKitError { tally.rejected += 1 } catch {
            Issue.record("\(what): not a BatchNormKitError: \(type(of: error)) \(error)")
        }
    }

    @Test("IDX: raw and gzip files, 3000 mutations")
    func idx() throws {
        let pixels = (0..<24).map { UInt8($0 * 10) }
        let valid = [UInt8]([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4]) + pixels
        let gzipPath = directory + "/seed.gz"
        try IDXFile.write(dimensions: [2, 3, 4], bytes: pixels, to: gzipPath, compressed: true)
        let gzipped = [UInt8](try Data(contentsOf: URL(fileURLWithPath: gzipPath)))
        var mutator = ByteMutator(rng: ReferenceRandom(seed: 2026))
        var tally = Tally()
        for i in 0..<3000 {
            let input = mutator.mutate(i % 2 == 0 ? valid : gzipped)
            let path = directory + "/case.idx"
            try Data(input).write(to: URL(fileURLWithPath: path))
            attempt(&tally, "IDX case \(i)") {
                let file = try IDXFile(contentsOf: path)
                // a file that parses is self-consistent
                #expect(file.bytes.count == file.dimensions.reduce(1, *), "IDX case \(i)")
            }
        }
        // the mutations must reach both outcomes, or they test nothing
        #expect(tally.parsed > 100 && tally.rejected > 1000, "parsed \(tally.parsed), rejected \(tally.rejected)")
    }

    /// A small state dict with metadata, as `bnkit train` writes it.
    func checkpointBytes() throws -> [UInt8] {
        let net = try SeedNetwork(inputSize: 6, hiddenSizes: [4, 3], classes: 2)
        let path = directory + "/seed.safetensors"
        try net.saveCheckpoint(to: path, metadata: ["note": "fuzz seed"])
        return [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// Rewrites the header — a number, a string, a metadata value or (rarely)
    /// a structural character — and fixes the length prefix, so most
    /// mutations stay valid JSON and reach the checks behind the parser.
    func mutateHeader(_ bytes: [UInt8], _ mutator: inout ByteMutator) -> [UInt8] {
        let length = Int(bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << UInt64(8 * $1.offset) })
        var header = String(decoding: bytes[8..<(8 + length)], as: UTF8.self)
        let numbers = ["0", "1", "-1", "7", "255", "2147483648", "18446744073709551615", "99999999999999999999999",
                       "1e309", "3.5", "-0"]
        let strings = ["F16", "I64", "F64", "BOOL", "U8", "x", "", "layers.0.weight", "layers.9.bias", "1000000000",
                       "0", "-3", "4,0", "1000000,1000000", "batchnorm", "none", "after", "sideways", "SeedNetwork"]
        func pick(_ list: [String]) -> String { list[mutator.below(list.count)] }
        switch mutator.below(4) {
        case 0:   // a number
            let digits = header.indices.filter { header[$0].isNumber && (header[$0] == header.first || !header[header.index(before: $0)].isNumber) }
            if let at = digits.isEmpty ? nil : digits[mutator.below(digits.count)] {
                var end = at
                while end < header.endIndex && header[end].isNumber { end = header.index(after: end) }
                header.replaceSubrange(at..<end, with: pick(numbers))
            }
        case 1:   // a string's contents (a dtype, a name, a metadata key or value)
            let quotes = header.indices.filter { header[$0] == "\"" }
            let pairs = stride(from: 0, to: quotes.count - 1, by: 2).map { (quotes[$0], quotes[$0 + 1]) }
            if let (open, close) = pairs.isEmpty ? nil : pairs[mutator.below(pairs.count)] {
                header.replaceSubrange(header.index(after: open)..<close, with: pick(strings))
            }
        case 2:   // an architecture entry of the metadata, as bnkit writes it
            let key = pick(["input_size", "hidden_sizes", "classes", "norm", "placement", "architecture"])
            if let range = header.range(of: "\"\(key)\":\"") , let close = header[range.upperBound...].firstIndex(of: "\"") {
                header.replaceSubrange(range.upperBound..<close, with: pick(strings))
            }
        default:  // a structural character
            let marks = header.indices.filter { "[]{},:".contains(header[$0]) }
            if let at = marks.isEmpty ? nil : marks[mutator.below(marks.count)] {
                header.replaceSubrange(at...at, with: pick(["", " ", "[", "}", ",", ":", "\"", "{}"]))
            }
        }
        let body = Array(header.utf8)
        let prefix = (0..<8).map { UInt8(truncatingIfNeeded: UInt64(body.count) >> UInt64(8 * $0)) }
        return prefix + body + bytes[(8 + length)...]
    }

    @Test("safetensors and checkpoint loading: 3000 byte and header mutations")
    func safetensors() throws {
        let valid = try checkpointBytes()
        let headerEnd = 8 + Int(valid[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << UInt64(8 * $1.offset) })
        var mutator = ByteMutator(rng: ReferenceRandom(seed: 1107))
        var files = Tally(), networks = Tally()
        for i in 0..<3000 {
            let input: [UInt8]
            switch i % 3 {
            case 0: input = mutator.mutate(valid)                         // anywhere, often the length prefix or header
            case 1: input = Array(valid[..<headerEnd]) + mutator.mutate(Array(valid[headerEnd...]))   // the tensor data
            default: input = mutateHeader(valid, &mutator)
            }
            attempt(&files, "safetensors case \(i)") {
                let file = try SafeTensorsFile(bytes: input, path: "case \(i)")
                for (name, tensor) in file.tensors {
                    #expect(tensor.bytes.count == SafeTensor.byteCount(of: tensor.shape, dtype: tensor.dtype), "case \(i) \(name)")
                }
                // the whole `bnkit eval` path: architecture from metadata or names, strict load
                attempt(&networks, "checkpoint case \(i)") { _ = try SeedNetwork(stateDict: file, path: "case \(i)") }
            }
        }
        #expect(files.parsed > 200 && files.rejected > 1000, "files parsed \(files.parsed), rejected \(files.rejected)")
        #expect(networks.parsed > 100 && networks.rejected > 100, "networks built \(networks.parsed), rejected \(networks.rejected)")
    }
}

extension ParserFuzzTests {
    @Test("found by the fuzzer: metadata claiming a huge network is rejected before anything is allocated")
    func hugeArchitecture() throws {
        let file = try SafeTensorsFile(bytes: try checkpointBytes(), path: "seed")
        var claimed = file
        claimed.metadata["input_size"] = "1000000"
        claimed.metadata["hidden_sizes"] = "1000000,1000000"
        #expect(throws: BatchNormKitError.self) { try SeedNetwork(stateDict: claimed, path: "claimed") }
        claimed.metadata["hidden_sizes"] = "\(Int.max),2"     // the value count overflows Int
        #expect(throws: BatchNormKitError.self) { try SeedNetwork(stateDict: claimed, path: "claimed") }
        // the honest file still loads
        #expect(throws: Never.self) { try SeedNetwork(stateDict: file, path: "seed") }
    }
}
