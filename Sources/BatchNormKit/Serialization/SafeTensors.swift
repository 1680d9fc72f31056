import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// A self-contained codec of the safetensors format (https://github.com/huggingface/safetensors):
//
//     u64 little-endian N | N bytes of UTF-8 JSON header (space-padded) | data section
//
// The header maps tensor names to `{"dtype", "shape", "data_offsets": [begin, end]}`
// (offsets relative to the start of the data section) plus an optional
// `"__metadata__"` object of string → string. Reading is in this file; writing
// (byte-identical to `safetensors.torch.save_file`) and the atomic file
// replacement are in `SafeTensors+Writing.swift`; reading a file header
// first and the JSON helpers both sides share, in `SafeTensors+IO.swift`.

/// The element type of a tensor in a safetensors file, spelled as in the header.
///
/// Cases are declared in the reference implementation's order (ascending
/// alignment); the writer lays tensors out in the reverse order so every
/// tensor's data stays aligned to its element size.
public enum SafeTensorsDType: String, CaseIterable, Sendable {
    /// Booleans, one byte each (0 or 1).
    case bool = "BOOL"
    /// Unsigned 8-bit integers.
    case u8 = "U8"
    /// Signed 8-bit integers.
    case i8 = "I8"
    /// 8-bit floats with 5 exponent and 2 mantissa bits (raw bytes only).
    case f8E5M2 = "F8_E5M2"
    /// 8-bit floats with 4 exponent and 3 mantissa bits (raw bytes only).
    case f8E4M3 = "F8_E4M3"
    /// Signed 16-bit integers.
    case i16 = "I16"
    /// Unsigned 16-bit integers.
    case u16 = "U16"
    /// IEEE 754 half-precision floats (raw bytes only).
    case f16 = "F16"
    /// bfloat16 floats (raw bytes only).
    case bf16 = "BF16"
    /// Signed 32-bit integers.
    case i32 = "I32"
    /// Unsigned 32-bit integers.
    case u32 = "U32"
    /// IEEE 754 single-precision floats: PyTorch's default `float32`.
    case f32 = "F32"
    /// IEEE 754 double-precision floats.
    case f64 = "F64"
    /// Signed 64-bit integers (`num_batches_tracked`, class labels).
    case i64 = "I64"
    /// Unsigned 64-bit integers.
    case u64 = "U64"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .bool, .u8, .i8, .f8E5M2, .f8E4M3: return 1
        case .i16, .u16, .f16, .bf16: return 2
        case .i32, .u32, .f32: return 4
        case .f64, .i64, .u64: return 8
        }
    }

    /// Position in the reference implementation's dtype order (its write order is descending).
    var referenceRank: Int {
        switch self {
        case .bool: return 0
        case .u8: return 1
        case .i8: return 2
        case .f8E5M2: return 3
        case .f8E4M3: return 4
        case .i16: return 5
        case .u16: return 6
        case .f16: return 7
        case .bf16: return 8
        case .i32: return 9
        case .u32: return 10
        case .f32: return 11
        case .f64: return 12
        case .i64: return 13
        case .u64: return 14
        }
    }
}

/// One tensor of a safetensors file: an element type, a shape and the raw
/// little-endian bytes of its elements in row-major order.
///
/// The typed initializers check that the element count matches the shape.
/// The typed accessors (``floats``, ``doubles``, ``int64s``, ``int32s``) throw
/// `BatchNormKitError.invalidArgument` when the tensor holds another dtype —
/// there are no silent conversions — and `elementCountMismatch` when the
/// properties were edited into an inconsistent state.
public struct SafeTensor: Equatable, Sendable {
    /// The element type.
    public var dtype: SafeTensorsDType
    /// The dimensions, outermost first; `[]` is a scalar (one element).
    public var shape: [Int]
    /// The elements' little-endian bytes, `product(shape) · dtype.byteSize` of them.
    public var bytes: [UInt8]

    /// A tensor from raw little-endian bytes.
    /// - Throws: `invalidArgument` for a negative or overflowing shape,
    ///   `elementCountMismatch` when `bytes.count != product(shape) · dtype.byteSize`.
    public init(dtype: SafeTensorsDType, shape: [Int], bytes: [UInt8]) throws {
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
        if let problem = validationError(context: "SafeTensor(dtype: \(dtype.rawValue), shape: \(shape))") {
            throw problem
        }
    }

    /// An `F32` tensor holding `floats` in row-major order.
    /// - Throws: `invalidArgument` for a bad shape, `elementCountMismatch` when
    ///   `floats.count != product(shape)`.
    public init(floats: [Float], shape: [Int]) throws {
        try self.init(values: floats.map(\.bitPattern), count: floats.count, dtype: .f32, shape: shape)
    }

    /// An `F64` tensor holding `doubles` in row-major order.
    /// - Throws: as ``init(floats:shape:)``.
    public init(doubles: [Double], shape: [Int]) throws {
        try self.init(values: doubles.map(\.bitPattern), count: doubles.count, dtype: .f64, shape: shape)
    }

    /// An `I64` tensor holding `int64s` in row-major order (a scalar counter has shape `[]`).
    /// - Throws: as ``init(floats:shape:)``.
    public init(int64s: [Int64], shape: [Int]) throws {
        try self.init(values: int64s, count: int64s.count, dtype: .i64, shape: shape)
    }

    /// An `I32` tensor holding `int32s` in row-major order.
    /// - Throws: as ``init(floats:shape:)``.
    public init(int32s: [Int32], shape: [Int]) throws {
        try self.init(values: int32s, count: int32s.count, dtype: .i32, shape: shape)
    }

    private init<T: FixedWidthInteger>(values: [T], count: Int, dtype: SafeTensorsDType, shape: [Int]) throws {
        let context = "SafeTensor(\(dtype.rawValue), shape: \(shape))"
        guard let expected = SafeTensor.elementCount(of: shape) else {
            throw BatchNormKitError.invalidArgument(
                name: "shape", value: "\(shape)",
                requirement: "dimensions must be non-negative and their product must fit in Int")
        }
        guard expected == count else {
            throw BatchNormKitError.elementCountMismatch(context: context, expected: expected, got: count)
        }
        self.dtype = dtype
        self.shape = shape
        self.bytes = SafeTensor.littleEndianBytes(values)
    }

    /// The elements of an `F32` tensor.
    /// - Throws: `invalidArgument` if ``dtype`` is not `.f32`.
    public var floats: [Float] {
        get throws { try decoded(as: .f32, UInt32.self, reading: "[Float]").map(Float.init(bitPattern:)) }
    }

    /// The elements of an `F64` tensor.
    /// - Throws: `invalidArgument` if ``dtype`` is not `.f64`.
    public var doubles: [Double] {
        get throws { try decoded(as: .f64, UInt64.self, reading: "[Double]").map(Double.init(bitPattern:)) }
    }

    /// The elements of an `I64` tensor.
    /// - Throws: `invalidArgument` if ``dtype`` is not `.i64`.
    public var int64s: [Int64] {
        get throws { try decoded(as: .i64, Int64.self, reading: "[Int64]") }
    }

    /// The elements of an `I32` tensor.
    /// - Throws: `invalidArgument` if ``dtype`` is not `.i32`.
    public var int32s: [Int32] {
        get throws { try decoded(as: .i32, Int32.self, reading: "[Int32]") }
    }

    // MARK: - Internals

    /// The element count of `shape`, or nil for a negative dimension or overflow.
    static func elementCount(of shape: [Int]) -> Int? {
        var count = 1
        for dimension in shape {
            guard dimension >= 0 else { return nil }
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            guard !overflow else { return nil }
            count = product
        }
        return count
    }

    /// The byte count `shape` needs at `dtype`, or nil for a bad shape or overflow.
    static func byteCount(of shape: [Int], dtype: SafeTensorsDType) -> Int? {
        guard let count = elementCount(of: shape) else { return nil }
        let (total, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
        return overflow ? nil : total
    }

    /// Why this tensor cannot be written as is, or nil if it is consistent.
    func validationError(context: String) -> BatchNormKitError? {
        guard let expected = SafeTensor.byteCount(of: shape, dtype: dtype) else {
            return .invalidArgument(
                name: "shape", value: "\(shape)",
                requirement: "dimensions must be non-negative and the byte count must fit in Int")
        }
        guard expected == bytes.count else {
            return .elementCountMismatch(context: context + " byte count", expected: expected, got: bytes.count)
        }
        return nil
    }

    private func decoded<T: FixedWidthInteger>(as expected: SafeTensorsDType, _: T.Type, reading label: String) throws -> [T] {
        guard dtype == expected else {
            throw BatchNormKitError.invalidArgument(
                name: "dtype", value: dtype.rawValue,
                requirement: "must be \(expected.rawValue) to read the tensor as \(label)")
        }
        if let problem = validationError(context: "SafeTensor(\(dtype.rawValue), shape: \(shape))") {
            throw problem
        }
        let count = bytes.count / MemoryLayout<T>.size
        let raw = [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            bytes.withUnsafeBytes { source in
                UnsafeMutableRawBufferPointer(buffer).copyMemory(from: source)
            }
            initialized = count
        }
        #if _endian(little)
        return raw
        #else
        return raw.map { T(littleEndian: $0) }
        #endif
    }

    private static func littleEndianBytes<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
        #if _endian(little)
        return values.withUnsafeBytes { Array($0) }
        #else
        return values.map(\.littleEndian).withUnsafeBytes { Array($0) }
        #endif
    }
}

/// A safetensors file in memory: named tensors plus string metadata.
///
/// Reading validates the whole file and throws `BatchNormKitError.fileFormat`
/// (naming the file and, where there is one, the tensor) for any malformed
/// input; it never traps. Writing produces the same bytes as
/// `safetensors.torch.save_file` and replaces the target atomically.
public struct SafeTensorsFile: Equatable, Sendable {
    /// Tensors by name. The name `__metadata__` is reserved by the format.
    public var tensors: [String: SafeTensor]
    /// The header's `__metadata__` entries (omitted from the file when empty).
    public var metadata: [String: String]

    /// The header key reserved for ``metadata``.
    public static let metadataKey = "__metadata__"
    /// The largest header accepted, in bytes (the reference implementation's limit).
    public static let maximumHeaderLength = 100_000_000

    /// An empty file: no tensors, no metadata.
    public init() {
        tensors = [:]
        metadata = [:]
    }

    /// A file holding `tensors` and `metadata`.
    public init(tensors: [String: SafeTensor], metadata: [String: String] = [:]) {
        self.tensors = tensors
        self.metadata = metadata
    }

    /// Reads and validates the safetensors file at `path`.
    /// - Throws: `fileUnreadable` if the file cannot be read, `fileFormat` if it is malformed.
    public init(contentsOf path: String) throws {
        try self.init(bytes: SafeTensorsIO.readFile(atPath: path), path: path)
    }

    /// Parses and validates a whole safetensors file held in `bytes`.
    /// - Parameters:
    ///   - bytes: the whole file.
    ///   - path: names the file in error messages only.
    /// - Throws: `fileFormat` for a truncated file, a header that is not a JSON
    ///   object, an entry without `dtype`/`shape`/`data_offsets`, an unknown dtype,
    ///   a negative or overflowing shape, offsets outside the data section or
    ///   reversed, a byte range whose length is not `product(shape) · dtype size`,
    ///   overlapping tensors, or data bytes no tensor covers.
    public init(bytes: [UInt8], path: String) throws {
        func fail(_ reason: String) -> BatchNormKitError { .fileFormat(path: path, reason: reason) }

        guard bytes.count >= 8 else {
            throw fail("file is \(bytes.count) bytes; a safetensors file starts with an 8-byte header length")
        }
        var declared: UInt64 = 0
        for index in 0..<8 { declared |= UInt64(bytes[index]) << (8 * UInt64(index)) }
        let available = bytes.count - 8
        guard declared <= UInt64(available) else {
            throw fail("header length \(declared) exceeds the \(available) bytes that follow the length field")
        }
        let headerLength = Int(declared)
        guard headerLength <= SafeTensorsFile.maximumHeaderLength else {
            throw fail("header length \(headerLength) exceeds the \(SafeTensorsFile.maximumHeaderLength)-byte limit")
        }
        guard headerLength > 0, bytes[8] == UInt8(ascii: "{") else {
            throw fail("header does not start with '{'")
        }
        let dataStart = 8 + headerLength
        let dataCount = bytes.count - dataStart

        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(bytes[8..<dataStart]), options: [])
        } catch {
            let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String
            throw fail("header is not valid JSON: \(detail ?? String(describing: error))")
        }
        guard let header = json as? [String: Any] else {
            throw fail("header is not a JSON object")
        }

        var metadata: [String: String] = [:]
        if let rawMetadata = header[SafeTensorsFile.metadataKey], !(rawMetadata is NSNull) {
            guard let entries = rawMetadata as? [String: Any] else {
                throw fail("\"__metadata__\" is not a JSON object")
            }
            for (key, value) in entries {
                guard let text = value as? String else {
                    throw fail("\"__metadata__\" entry \"\(key)\" is not a string")
                }
                metadata[key] = text
            }
        }

        struct Region { let name: String; let begin: Int; let end: Int }
        var regions: [Region] = []
        var tensors: [String: SafeTensor] = [:]
        let names = header.keys.filter { $0 != SafeTensorsFile.metadataKey }.sorted(by: SafeTensorsIO.byteOrder)
        regions.reserveCapacity(names.count)
        for name in names {
            func bad(_ reason: String) -> BatchNormKitError { fail("tensor \"\(name)\": \(reason)") }
            guard let entry = header[name] as? [String: Any] else { throw bad("entry is not a JSON object") }
            guard let rawDType = entry["dtype"] else { throw bad("missing \"dtype\"") }
            guard let dtypeName = rawDType as? String else { throw bad("\"dtype\" is not a string") }
            guard let dtype = SafeTensorsDType(rawValue: dtypeName) else { throw bad("unknown dtype \"\(dtypeName)\"") }
            guard let rawShape = entry["shape"] else { throw bad("missing \"shape\"") }
            guard let shape = SafeTensorsIO.integers(rawShape) else {
                throw bad("\"shape\" is not an array of non-negative integers")
            }
            guard let rawOffsets = entry["data_offsets"] else { throw bad("missing \"data_offsets\"") }
            guard let offsets = SafeTensorsIO.integers(rawOffsets), offsets.count == 2 else {
                throw bad("\"data_offsets\" is not an array of two non-negative integers")
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin <= end else { throw bad("data_offsets [\(begin), \(end)] begin after they end") }
            guard end <= dataCount else {
                throw bad("data_offsets [\(begin), \(end)] extend past the \(dataCount)-byte data section")
            }
            guard let needed = SafeTensor.byteCount(of: shape, dtype: dtype) else {
                throw bad("shape \(shape) is too large")
            }
            guard needed == end - begin else {
                throw bad("shape \(shape) of \(dtype.rawValue) needs \(needed) bytes but data_offsets [\(begin), \(end)] span \(end - begin)")
            }
            regions.append(Region(name: name, begin: begin, end: end))
            tensors[name] = SafeTensor(
                uncheckedDType: dtype, shape: shape, bytes: Array(bytes[(dataStart + begin)..<(dataStart + end)]))
        }

        // The format requires the data section to be covered exactly: no
        // overlaps, no holes, no trailing bytes (it prevents polyglot files).
        regions.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var cursor = 0
        var previous: String?
        for region in regions {
            if region.begin < cursor, let previous {
                throw fail("tensor \"\(region.name)\" overlaps tensor \"\(previous)\"")
            }
            if region.begin > cursor {
                throw fail("data bytes \(cursor)..<\(region.begin) before tensor \"\(region.name)\" belong to no tensor")
            }
            cursor = region.end
            previous = region.name
        }
        guard cursor == dataCount else {
            throw fail("the last \(dataCount - cursor) of \(dataCount) data bytes belong to no tensor")
        }

        self.tensors = tensors
        self.metadata = metadata
    }
}

extension SafeTensor {
    /// A tensor whose consistency the caller has already checked.
    fileprivate init(uncheckedDType dtype: SafeTensorsDType, shape: [Int], bytes: [UInt8]) {
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }
}
