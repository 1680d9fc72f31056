import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension SafeTensorsFile {
    /// The file's bytes, laid out exactly as `safetensors.torch.save_file` lays
    /// them out: tensors ordered by dtype (widest alignment first) then by name
    /// (UTF-8 byte order), a compact JSON header with `__metadata__` first (left
    /// out when ``metadata`` is empty), padded with spaces to a multiple of 8
    /// bytes so the data section — and every tensor in it — is aligned.
    ///
    /// - Throws: `invalidArgument` for a tensor named `__metadata__` or with a
    ///   bad shape, `elementCountMismatch` for a tensor whose ``SafeTensor/bytes``
    ///   do not match its shape and dtype. A file this writes always reads back.
    public func serialized() throws -> [UInt8] {
        let ordered = try tensors.map { name, tensor -> (name: String, tensor: SafeTensor) in
            guard name != SafeTensorsFile.metadataKey else {
                throw BatchNormKitError.invalidArgument(
                    name: "tensor name", value: "\"\(name)\"",
                    requirement: "is reserved by the safetensors format for metadata")
            }
            if let problem = tensor.validationError(context: "tensor \"\(name)\"") { throw problem }
            return (name, tensor)
        }.sorted { left, right in
            if left.tensor.dtype != right.tensor.dtype {
                return left.tensor.dtype.referenceRank > right.tensor.dtype.referenceRank
            }
            return SafeTensorsIO.byteOrder(left.name, right.name)
        }

        var header = "{"
        var separator = ""
        if !metadata.isEmpty {
            header += "\"__metadata__\":{"
            for (index, key) in metadata.keys.sorted(by: SafeTensorsIO.byteOrder).enumerated() {
                header += (index == 0 ? "" : ",") + _jsonStringLiteral(key) + ":"
                    + _jsonStringLiteral(metadata[key] ?? "")
            }
            header += "}"
            separator = ","
        }
        var offset = 0
        for (name, tensor) in ordered {
            let end = offset + tensor.bytes.count
            header += separator + _jsonStringLiteral(name)
                + ":{\"dtype\":\"\(tensor.dtype.rawValue)\",\"shape\":["
                + tensor.shape.map(String.init).joined(separator: ",")
                + "],\"data_offsets\":[\(offset),\(end)]}"
            separator = ","
            offset = end
        }
        header += "}"

        var headerBytes = Array(header.utf8)
        headerBytes += [UInt8](repeating: UInt8(ascii: " "), count: (8 - headerBytes.count % 8) % 8)
        var result: [UInt8] = []
        result.reserveCapacity(8 + headerBytes.count + offset)
        let length = UInt64(headerBytes.count)
        for index in 0..<8 { result.append(UInt8(truncatingIfNeeded: length >> (8 * UInt64(index)))) }
        result += headerBytes
        for (_, tensor) in ordered { result += tensor.bytes }
        return result
    }

    /// Writes ``serialized()`` to `path` atomically: the bytes go to a temporary
    /// file in the same directory, which is flushed to disk (`fsync`) and then
    /// renamed over `path`. A crash or error mid-save leaves any previous file
    /// at `path` whole; the temporary file is removed on error. A replaced
    /// file's permission bits are kept; a symbolic link at `path` is replaced,
    /// not followed.
    ///
    /// - Throws: the errors of ``serialized()``, or `fileUnreadable` (with the
    ///   system's reason) when the file cannot be written.
    public func write(to path: String) throws {
        try SafeTensorsIO.writeAtomically(serialized(), to: path)
    }
}

/// `text` as a JSON string literal, escaped as serde_json (the safetensors
/// reference implementation) escapes it: quotes, backslashes and control
/// characters only. Package access: bnkbench's JSON report uses it; not part of the API.
package func _jsonStringLiteral(_ text: String) -> String {
    var result = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": result += "\\\""
        case "\\": result += "\\\\"
        case "\u{08}": result += "\\b"
        case "\u{0C}": result += "\\f"
        case "\n": result += "\\n"
        case "\r": result += "\\r"
        case "\t": result += "\\t"
        case "\u{00}"..."\u{1F}":
            let hex = String(scalar.value, radix: 16)
            result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: result.unicodeScalars.append(scalar)
        }
    }
    return result + "\""
}

extension SafeTensorsIO {
    /// Replaces the file at `path` with `bytes` through a temporary file in the
    /// same directory, `fsync` and `rename`, so readers see the old or the new
    /// contents, never a mix.
    /// - Throws: `fileUnreadable` naming `path` and the failing step.
    static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        func failure(_ step: String) -> BatchNormKitError {
            .fileUnreadable(path: path, reason: "\(step): \(errorText())")
        }
        let directory: String
        let base: Substring
        if let slash = path.lastIndex(of: "/") {
            directory = slash == path.startIndex ? "/" : String(path[..<slash])
            base = path[path.index(after: slash)...]
        } else {
            directory = "."
            base = Substring(path)
        }
        guard !base.isEmpty else {
            throw BatchNormKitError.fileUnreadable(path: path, reason: "cannot write: the path names a directory")
        }
        let suffix = String(UInt64.random(in: .min ... .max), radix: 36)
        let temporary = (directory == "/" ? "/" : directory + "/") + ".\(base).tmp-\(getpid())-\(suffix)"

        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw failure("cannot create temporary file \(temporary)") }
        var isOpen = true
        var renamed = false
        defer {
            if isOpen { close(descriptor) }
            if !renamed { unlink(temporary) }
        }

        var existing = stat()
        if lstat(path, &existing) == 0 {
            let type = existing.st_mode & S_IFMT
            // rename(2) would replace a device node or FIFO (as root, /dev/full itself)
            guard type == S_IFREG || type == S_IFLNK else {
                throw BatchNormKitError.fileUnreadable(path: path, reason: "cannot write: it exists and is not a regular file")
            }
            if type == S_IFREG { _ = fchmod(descriptor, existing.st_mode & 0o7777) }
        }
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { buffer -> Int in
                guard let start = buffer.baseAddress else { return 0 }
                return write(descriptor, start + written, buffer.count - written)
            }
            if count < 0 {
                if errno == EINTR { continue }
                throw failure("cannot write temporary file \(temporary)")
            }
            written += count
        }
        guard fsync(descriptor) == 0 else { throw failure("cannot flush temporary file \(temporary)") }
        isOpen = false
        guard close(descriptor) == 0 else { throw failure("cannot close temporary file \(temporary)") }
        guard rename(temporary, path) == 0 else { throw failure("cannot rename \(temporary) over the file") }
        renamed = true
        removeStaleTemporaries(of: String(base), in: directory)

        // Make the rename itself durable; best effort (not every file system allows it).
        let directoryDescriptor = open(directory, O_RDONLY | O_CLOEXEC)
        if directoryDescriptor >= 0 {
            _ = fsync(directoryDescriptor)
            close(directoryDescriptor)
        }
    }

    /// Removes `.<base>.tmp-<pid>-*` files that an earlier save of the same
    /// target left behind when it was killed mid-write. A file is stale when
    /// its process is gone, or when the process now holding that PID started
    /// after the file was last written (the PID was reused). A live writer's
    /// file is kept, so concurrent saves of one path by several processes
    /// never break each other; this process's own files (another thread may
    /// be saving) are kept too. Best effort: failures are ignored.
    static func removeStaleTemporaries(of base: String, in directory: String) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        let prefix = ".\(base).tmp-"
        for name in names where name.hasPrefix(prefix) {
            let rest = name.dropFirst(prefix.count)
            guard let dash = rest.firstIndex(of: "-"), let pid = pid_t(rest[..<dash]), pid > 0, pid != getpid() else { continue }
            let path = OutputPath.joined(directory, name)
            var file = stat()
            guard lstat(path, &file) == 0, (file.st_mode & S_IFMT) == S_IFREG else { continue }
            if kill(pid, 0) == 0 || errno == EPERM {
                // Alive: stale only if that process began after the file's last write.
                guard let started = processStartTime(pid), started > Double(file.st_mtim.tv_sec) + 1 else { continue }
            }
            unlink(path)
        }
    }

    /// When process `pid` started, in seconds since the epoch (Linux
    /// `/proc/<pid>/stat` field 22 plus the boot time), or nil if unknown.
    static func processStartTime(_ pid: pid_t) -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state); starttime is field 22
        guard fields.count > 19, let ticks = Double(fields[19]),
              let system = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
              let line = system.split(separator: "\n").first(where: { $0.hasPrefix("btime ") }),
              let boot = Double(line.dropFirst(6).trimmingCharacters(in: .whitespaces)) else { return nil }
        let hertz = Double(sysconf(Int32(_SC_CLK_TCK)))
        return hertz > 0 ? boot + ticks / hertz : nil
    }
}
