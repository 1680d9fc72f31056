import CBatchNormKitZlib
#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// An IDX file (the MNIST container format) of unsigned bytes, fully read
/// into memory.
///
/// Layout: a big-endian header — magic bytes `[0, 0, typeCode, ndims]`, then
/// `ndims` big-endian `UInt32` sizes — followed by `∏ dimensions` elements,
/// row-major. Only type code `0x08` (unsigned byte) is supported. The file may
/// be gzip-compressed or raw; zlib reads both transparently.
///
/// Examples: MNIST images have magic `0x00000803` and shape `[N, rows, cols]`;
/// labels have magic `0x00000801` and shape `[N]`.
public struct IDXFile: Sendable, Equatable {
    /// The path the file was read from (as given).
    public let path: String
    /// The sizes from the header, outermost first, e.g. `[60000, 28, 28]`.
    public let dimensions: [Int]
    /// The payload, shape `dimensions`, row-major; `bytes.count == ∏ dimensions`.
    public let bytes: [UInt8]

    /// IDX type code for unsigned bytes, the only element type read here.
    public static let unsignedByteTypeCode: UInt8 = 0x08

    /// Reads and validates an IDX file, gzip-compressed or raw.
    ///
    /// - Parameters:
    ///   - path: the file; a `.gz` suffix is not required — zlib detects gzip.
    ///   - dimensionCount: if given, the number of dimensions the caller needs
    ///     (3 for `[N, rows, cols]` images, 1 for `[N]` labels).
    /// - Throws: `BatchNormKitError.fileUnreadable` when the file cannot be
    ///   opened or read; `.fileFormat` for a bad magic number, type code or
    ///   dimension count, a corrupt gzip stream, a payload shorter or longer
    ///   than `∏ dimensions`, or sizes whose product overflows `Int`.
    public init(contentsOf path: String, dimensionCount: Int? = nil) throws {
        let reader = try GzipReader(path: path)
        defer { reader.close() }

        // MARK: Header
        let magic = try reader.read(upTo: 4)
        guard magic.count == 4 else {
            throw BatchNormKitError.fileFormat(path: path, reason: "truncated: \(magic.count) bytes, too short for the 4-byte IDX magic number\(reader.truncationNote)")
        }
        guard magic[0] == 0, magic[1] == 0 else {
            let hex = magic.map { String(format: "%02X", $0) }.joined()
            throw BatchNormKitError.fileFormat(path: path, reason: "bad magic number 0x\(hex): an IDX file starts with two zero bytes, a type code and a dimension count (MNIST images: 0x00000803, labels: 0x00000801)")
        }
        let typeCode = magic[2], rank = Int(magic[3])
        guard typeCode == Self.unsignedByteTypeCode else {
            throw BatchNormKitError.fileFormat(path: path, reason: "IDX type code \(Self.describe(typeCode: typeCode)) is not supported; expected 0x08 (unsigned byte)")
        }
        guard rank >= 1 else {
            throw BatchNormKitError.fileFormat(path: path, reason: "IDX header declares 0 dimensions; expected at least 1")
        }
        if let dimensionCount, rank != dimensionCount {
            throw BatchNormKitError.fileFormat(path: path, reason: "expected \(dimensionCount) dimension\(dimensionCount == 1 ? "" : "s"), IDX header declares \(rank) (magic 0x0000\(String(format: "%02X%02X", typeCode, magic[3])))")
        }
        let sizeBytes = try reader.read(upTo: 4 * rank)
        guard sizeBytes.count == 4 * rank else {
            throw BatchNormKitError.fileFormat(path: path, reason: "truncated: header declares \(rank) dimensions (\(4 * rank) bytes of sizes) but the file ends after \(sizeBytes.count)\(reader.truncationNote)")
        }
        let dimensions = (0..<rank).map { i in
            sizeBytes[4 * i ..< 4 * i + 4].reduce(0) { $0 << 8 | Int($1) }
        }
        let shape = dimensions.map(String.init).joined(separator: "×")

        guard let expected = Self.elementCount(dimensions) else {
            throw BatchNormKitError.fileFormat(path: path, reason: "header sizes \(shape) multiply to more than \(Int.max) bytes")
        }

        // MARK: Payload
        let payload = try reader.read(upTo: expected)
        let compressed = reader.isCompressed ? " (decompressed)" : ""
        guard payload.count == expected else {
            throw BatchNormKitError.fileFormat(path: path, reason: "truncated: header says \(shape) = \(expected) bytes of data, file has \(payload.count)\(compressed)\(reader.truncationNote)")
        }
        let extra = try reader.countRemaining()
        guard extra.count == 0 else {
            throw BatchNormKitError.fileFormat(path: path, reason: "\(extra.more ? "more than " : "")\(extra.count) extra bytes\(compressed) after the \(shape) = \(expected)-byte payload the header describes")
        }
        try reader.finish()

        self.path = path
        self.dimensions = dimensions
        self.bytes = payload
    }

    /// `∏ dimensions`, or nil when it overflows `Int` — a fuzzed header can
    /// claim sizes like 2³²×2³²×2³².
    static func elementCount(_ dimensions: [Int]) -> Int? {
        var count = 1
        for size in dimensions {
            let (product, overflow) = count.multipliedReportingOverflow(by: size)
            if overflow { return nil }
            count = product
        }
        return count
    }

    /// A name for an IDX type code, for error messages (e.g. `0x0D (float32)`).
    static func describe(typeCode: UInt8) -> String {
        let names: [UInt8: String] = [
            0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "int16",
            0x0C: "int32", 0x0D: "float32", 0x0E: "float64",
        ]
        return String(format: "0x%02X", typeCode) + " (\(names[typeCode] ?? "unknown"))"
    }
}

// MARK: - Writing

extension IDXFile {
    /// Writes an unsigned-byte IDX file with shape `dimensions` (payload
    /// `bytes`, row-major, `bytes.count == ∏ dimensions`), gzip-compressed or
    /// raw. Used to build test fixtures and small datasets.
    static func write(dimensions: [Int], bytes: [UInt8], to path: String, compressed: Bool) throws {
        guard (1...255).contains(dimensions.count),
              dimensions.allSatisfy({ (0...Int(UInt32.max)).contains($0) })
        else {
            throw BatchNormKitError.invalidArgument(name: "dimensions", value: "\(dimensions)", requirement: "1 to 255 sizes, each in 0...\(UInt32.max)")
        }
        let count = elementCount(dimensions)
        guard count == bytes.count else {
            throw BatchNormKitError.elementCountMismatch(context: "IDXFile.write \(path)", expected: count ?? Int.max, got: bytes.count)
        }
        var header: [UInt8] = [0, 0, unsignedByteTypeCode, UInt8(dimensions.count)]
        for size in dimensions {
            header += [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: size >> $0) }
        }
        try writeFile(header + bytes, to: path, compressed: compressed)
    }

    /// Writes `data` verbatim (through gzip when `compressed`) — also lets
    /// tests build deliberately malformed files.
    static func writeFile(_ data: [UInt8], to path: String, compressed: Bool) throws {
        // "T" asks zlib for transparent (uncompressed) output, so one code path writes both.
        guard let file = gzopen(path, compressed ? "wb" : "wbT") else {
            throw BatchNormKitError.fileUnreadable(path: path, reason: "cannot create: \(String(cString: strerror(errno)))")
        }
        var written = 0
        while written < data.count {
            let n = data.withUnsafeBytes { bnk_gzwrite(file, $0.baseAddress! + written, $0.count - written) }
            guard n > 0 else {
                let message = GzipReader.message(file, path: path) ?? "write failed"
                gzclose(file)
                throw BatchNormKitError.fileUnreadable(path: path, reason: "cannot write: \(message)")
            }
            written += n
        }
        guard gzclose(file) == Z_OK else {
            throw BatchNormKitError.fileUnreadable(path: path, reason: "cannot write: closing the file failed")
        }
    }
}

// MARK: - Reading through zlib

/// A read-only zlib stream over one file (gzip or raw). Not copyable in
/// spirit: one owner reads it, then calls `close()`.
private final class GzipReader {
    let path: String
    private var file: gzFile?

    init(path: String) throws {
        // Only a regular file: /dev/zero would inflate forever, a FIFO block.
        let (descriptor, _) = try _openRegularFile(path)
        guard let file = gzdopen(descriptor, "rb") else {
            let reason = String(cString: strerror(errno))
            Glibc.close(descriptor)
            throw BatchNormKitError.fileUnreadable(path: path, reason: "cannot open: \(reason)")
        }
        self.path = path
        self.file = file
        // zlib's default 8 KiB input buffer costs many read(2) calls on 26 MB files.
        _ = gzbuffer(file, 1 << 18)
    }

    /// Whether the file is gzip (false: zlib passes raw bytes through).
    var isCompressed: Bool { file.map { gzdirect($0) == 0 } ?? false }

    /// Reads until `limit` bytes or end of stream. The buffer starts at 1 MiB
    /// and doubles with the data actually present, so a header claiming
    /// terabytes cannot make us allocate them (or even 64 MiB) up front.
    func read(upTo limit: Int) throws -> [UInt8] {
        guard let file, limit > 0 else { return [] }
        var buffer = [UInt8](repeating: 0, count: min(limit, 1 << 20))
        var filled = 0
        while filled < limit {
            if filled == buffer.count {
                let grown = buffer.count > limit / 2 ? limit : buffer.count * 2
                buffer.append(contentsOf: repeatElement(0, count: grown - buffer.count))
            }
            let n = buffer.withUnsafeMutableBytes { raw in
                bnk_gzread(file, raw.baseAddress! + filled, raw.count - filled)
            }
            if n < 0 { try throwStreamError() }
            if n <= 0 { break }
            filled += n
        }
        // A cut-off gzip stream (Z_BUF_ERROR) is left for the caller, who can
        // say how much data the header promised; it stays set for later checks.
        if filled < buffer.count { buffer.removeSubrange(filled...) }
        return buffer
    }

    /// How many bytes follow what was read, counting at most `limit`: a
    /// gzip member that inflates far beyond what the header needs is
    /// rejected after `limit` extra bytes, not inflated to its end.
    /// Returns (count, whether the stream goes on past `limit`).
    func countRemaining(limit: Int = 1 << 16) throws -> (count: Int, more: Bool) {
        guard let file else { return (0, false) }
        var scratch = [UInt8](repeating: 0, count: limit + 1)
        var total = 0
        while total <= limit {
            let n = scratch.withUnsafeMutableBytes { bnk_gzread(file, $0.baseAddress!, limit + 1 - total) }
            if n < 0 { try throwStreamError() }
            if n <= 0 { break }
            total += n
        }
        if total <= limit { try throwStreamError() }
        return (min(total, limit), total > limit)
    }

    /// Describes why reading stopped early, for truncation messages:
    /// gzip files may be cut off mid-stream, not just short.
    var truncationNote: String {
        guard let file, bnk_gzerror_code(file) == Z_BUF_ERROR else { return "" }
        return "; the gzip stream itself is cut off (zlib: \(Self.message(file, path: path) ?? "unexpected end of file"))"
    }

    /// Closes the stream, reporting a gzip stream that ended mid-member.
    func finish() throws {
        guard let file else { return }
        self.file = nil
        let status = gzclose_r(file)
        guard status == Z_OK else {
            throw BatchNormKitError.fileFormat(path: path, reason: "corrupt gzip data (zlib status \(status) on close)")
        }
    }

    func close() {
        if let file { gzclose_r(file) }
        file = nil
    }

    /// Throws the pending zlib error, if any, as a BatchNormKitError.
    private func throwStreamError() throws {
        guard let file else { return }
        let code = bnk_gzerror_code(file)
        guard code != Z_OK else { return }
        let message = Self.message(file, path: path) ?? "zlib error \(code)"
        switch code {
        case Z_ERRNO:
            throw BatchNormKitError.fileUnreadable(path: path, reason: "read failed: \(message)")
        case Z_BUF_ERROR:
            throw BatchNormKitError.fileFormat(path: path, reason: "truncated gzip stream (zlib: \(message))")
        default:
            throw BatchNormKitError.fileFormat(path: path, reason: "corrupt gzip data (zlib: \(message))")
        }
    }

    /// zlib's error text without the "path: " prefix it adds, since
    /// BatchNormKitError's description already starts with the path.
    static func message(_ file: gzFile, path: String) -> String? {
        guard let text = bnk_gzerror_text(file) else { return nil }
        let message = String(cString: text)
        return message.hasPrefix(path + ": ") ? String(message.dropFirst(path.count + 2)) : message
    }
}
