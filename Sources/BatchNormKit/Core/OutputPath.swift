// Output paths are checked before any long work starts: a checkpoint or a
// metrics file whose directory is missing or read-only must fail in the first
// second, not after the last epoch, and never while other threads or ranks
// wait for this one.

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// How a file will be written, which decides what may already be at its path.
public enum OutputKind: Sendable {
    /// Replaced whole through a temporary file and `rename` (checkpoints,
    /// CSV reports): the path must be absent or a regular file, since a
    /// rename would replace a device or a FIFO.
    case atomicReplace
    /// Opened once and appended to as work goes on (`--metrics`): an existing
    /// character device or FIFO (`/dev/stdout`, `/dev/null`) is fine.
    case stream
}

/// Preflight checks for the files a command will write.
public enum OutputPath {
    /// Throws unless `path` can be written as `kind`: the directory exists,
    /// is a directory and accepts a new file (tried by creating and removing
    /// one, which also catches read-only file systems and root-owned
    /// directories), and the path itself is not a directory.
    ///
    /// - Parameters:
    ///   - path: the file to be written.
    ///   - role: what the file is, for the message (`"checkpoint"`).
    ///   - kind: how it will be written (replaced atomically, or streamed).
    /// - Throws: `BatchNormKitError.fileUnreadable` naming the path, the role
    ///   and the system's reason (`strerror`).
    public static func check(_ path: String, role: String, kind: OutputKind = .atomicReplace) throws {
        func fail(_ reason: String) -> BatchNormKitError {
            .fileUnreadable(path: path, reason: "cannot write the \(role) here: \(reason)")
        }
        let (directory, base) = split(path)
        guard !base.isEmpty, base != ".", base != ".." else { throw fail("the path names a directory, not a file") }

        var info = stat()
        guard stat(directory, &info) == 0 else {
            throw fail("directory \(directory): \(String(cString: strerror(errno)))")
        }
        guard (info.st_mode & S_IFMT) == S_IFDIR else {
            throw fail("directory \(directory): \(String(cString: strerror(ENOTDIR)))")
        }
        if stat(path, &info) == 0 {
            let type = info.st_mode & S_IFMT
            if type == S_IFDIR { throw fail("it is a directory") }
            if kind == .atomicReplace && type != S_IFREG {
                throw fail("it exists and is not a regular file (a device, FIFO or socket would be replaced)")
            }
            if kind == .stream {
                guard access(path, W_OK) == 0 else { throw fail(String(cString: strerror(errno))) }
                return
            }
        }
        // A real attempt: access(2) says yes to root on a read-only mount.
        let probe = joined(directory, ".\(base).probe-\(getpid())-\(String(UInt64.random(in: .min ... .max), radix: 36))")
        let descriptor = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw fail("directory \(directory): \(String(cString: strerror(errno)))") }
        close(descriptor)
        unlink(probe)
    }

    /// Writes `bytes` to `path` atomically (temporary file, `fsync`,
    /// `rename`; stale temporaries of earlier killed saves are removed), as
    /// checkpoints are written: every write is checked.
    /// - Throws: `fileUnreadable` naming the failing step and the system's reason.
    public static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        try SafeTensorsIO.writeAtomically(bytes, to: path)
    }

    /// The directory (`.` when none is given) and the last component of `path`.
    static func split(_ path: String) -> (directory: String, base: String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let directory = slash == path.startIndex ? "/" : String(path[..<slash])
        return (directory, String(path[path.index(after: slash)...]))
    }

    /// `directory/name` without a doubled slash at the root.
    static func joined(_ directory: String, _ name: String) -> String {
        (directory == "/" ? "/" : directory + "/") + name
    }
}

// MARK: - Reading only regular files

/// Opens `path` for reading, refusing anything but a regular file: a device
/// (`/dev/zero` never ends) or a FIFO (blocks until a writer comes) is not a
/// data file. The FIFO check happens without blocking (`O_NONBLOCK`, then
/// cleared). Returns the descriptor and the file's size in bytes.
///
/// - Throws: `BatchNormKitError.fileUnreadable` with the system's reason.
func _openRegularFile(_ path: String) throws -> (descriptor: Int32, size: Int) {
    let descriptor = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
    guard descriptor >= 0 else {
        throw BatchNormKitError.fileUnreadable(path: path, reason: "cannot open: \(String(cString: strerror(errno)))")
    }
    var info = stat()
    guard fstat(descriptor, &info) == 0 else {
        let reason = String(cString: strerror(errno))
        close(descriptor)
        throw BatchNormKitError.fileUnreadable(path: path, reason: "cannot stat: \(reason)")
    }
    let type = info.st_mode & S_IFMT
    guard type == S_IFREG else {
        close(descriptor)
        let kind = type == S_IFDIR ? "a directory" : type == S_IFIFO ? "a FIFO" : type == S_IFCHR ? "a character device"
            : type == S_IFBLK ? "a block device" : type == S_IFSOCK ? "a socket" : "not a regular file"
        throw BatchNormKitError.fileUnreadable(path: path, reason: "is \(kind); expected a regular file")
    }
    _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) & ~O_NONBLOCK)
    return (descriptor, Int(info.st_size))
}
