import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// Reading a safetensors file header first (a file whose size its header
// contradicts is refused before its body is read) and the JSON and errno
// helpers the reader (`SafeTensors.swift`) and the writer share.

/// File and JSON helpers shared by the safetensors reader and writer.
enum SafeTensorsIO {
    /// Orders strings by their UTF-8 bytes, as the reference implementation (Rust) does.
    static func byteOrder(_ a: String, _ b: String) -> Bool {
        a.utf8.lexicographicallyPrecedes(b.utf8)
    }

    /// A JSON array of non-negative integers that fit in `Int`, or nil. Rejects
    /// booleans and non-integral numbers (`1.0`), which JSONSerialization would
    /// otherwise let through as `Int`.
    static func integers(_ value: Any) -> [Int]? {
        let integerKinds: [CChar] = ["i", "l", "q", "s", "I", "L", "Q", "S"].map { CChar(UInt8(ascii: $0)) }
        guard let array = value as? [Any] else { return nil }
        var result: [Int] = []
        result.reserveCapacity(array.count)
        for element in array {
            guard let number = element as? NSNumber, !(number is NSDecimalNumber) else { return nil }
            guard integerKinds.contains(number.objCType.pointee) else { return nil }
            guard let integer = element as? Int, integer >= 0 else { return nil }
            result.append(integer)
        }
        return result
    }

    /// The bytes of the safetensors file at `path`, read header first: only a
    /// regular file is opened (a device or FIFO is refused before any read),
    /// and the 8-byte length and the JSON header are read and checked against
    /// the file's size before the body is, so a header that claims more data
    /// than the file holds — or a file far larger than its header describes —
    /// is refused without reading it.
    /// - Throws: `fileUnreadable` with the system's reason; `fileFormat` for a
    ///   header length or data offsets the file's size contradicts.
    static func readFile(atPath path: String) throws -> [UInt8] {
        let (descriptor, size) = try _openRegularFile(path)
        defer { close(descriptor) }
        func fail(_ reason: String) -> BatchNormKitError { .fileFormat(path: path, reason: reason) }

        var result = try readBytes(descriptor, count: min(size, 8), path: path)
        guard result.count == 8 else { return result }   // too short: the parser names it
        var declared: UInt64 = 0
        for index in 0..<8 { declared |= UInt64(result[index]) << (8 * UInt64(index)) }
        guard declared <= UInt64(size - 8) else {
            throw fail("header length \(declared) exceeds the \(size - 8) bytes that follow the length field")
        }
        guard declared <= UInt64(SafeTensorsFile.maximumHeaderLength) else {
            throw fail("header length \(declared) exceeds the \(SafeTensorsFile.maximumHeaderLength)-byte limit")
        }
        let headerLength = Int(declared)
        result.reserveCapacity(size)
        result += try readBytes(descriptor, count: headerLength, path: path)
        if let described = describedDataLength(result[8...]), described != size - 8 - headerLength {
            throw fail("the header describes \(described) data bytes but the file holds \(size - 8 - headerLength) after it")
        }
        result += try readBytes(descriptor, count: size - 8 - headerLength, path: path)
        return result
    }

    /// Up to `count` bytes from `descriptor` (fewer at end of file).
    private static func readBytes(_ descriptor: Int32, count: Int, path: String) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let n = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress! + filled, count - filled) }
            if n < 0 {
                if errno == EINTR { continue }
                throw BatchNormKitError.fileUnreadable(path: path, reason: "cannot read: \(errorText())")
            }
            if n == 0 { break }
            filled += n
        }
        if filled < count { buffer.removeSubrange(filled...) }
        return buffer
    }

    /// The largest `data_offsets` end in a header, when the header parses as
    /// JSON; nil otherwise (the full parser then names what is wrong).
    private static func describedDataLength(_ header: ArraySlice<UInt8>) -> Int? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(header)) as? [String: Any] else { return nil }
        var end = 0
        for (name, entry) in object where name != SafeTensorsFile.metadataKey {
            guard let offsets = (entry as? [String: Any])?["data_offsets"].flatMap(integers), offsets.count == 2 else { return nil }
            end = max(end, offsets[1])
        }
        return end
    }

    /// The text of the current `errno`.
    static func errorText() -> String {
        String(cString: strerror(errno))
    }
}
