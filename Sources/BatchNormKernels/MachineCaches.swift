#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - The running machine's caches
//
// The kernels' thresholds (row grouping, streaming stores, the thread split)
// are cache sizes in disguise, and one machine kind comes with different
// caches from one session to the next (512 KB or 1 MB of L2 per core). So
// they are derived at start-up from the caches of the machine the process
// runs on (``KernelTuning/derived(from:)``), never from one measured once.

/// Data cache sizes of the running machine, in bytes: L1d and L2 per core,
/// L3 as seen by one core (the slice it shares with its neighbours).
public struct MachineCaches: Sendable, Equatable, CustomStringConvertible {
    /// L1 data cache per core.
    public var l1d: Int
    /// L2 per core.
    public var l2: Int
    /// L3 seen by one core (0: none).
    public var l3: Int
    /// Where the sizes came from: `sysfs`, `sysconf` or `defaults`.
    public var source: String

    public init(l1d: Int, l2: Int, l3: Int, source: String) {
        self.l1d = l1d; self.l2 = l2; self.l3 = l3; self.source = source
    }

    /// Read once, on first use: sysfs (Linux), else sysconf, else
    /// ``fallback``.
    public static let current: MachineCaches =
        read(sysfs: "/sys/devices/system/cpu/cpu0/cache") ?? fromSysconf() ?? fallback

    /// Sizes assumed when the machine reports none (an x86-64 server core
    /// of 2020: 32 KB, 512 KB, 32 MB).
    public static let fallback = MachineCaches(l1d: 32 << 10, l2: 512 << 10, l3: 32 << 20, source: "defaults")

    /// The caches listed under `directory` (`index*/{level,type,size}`, as
    /// Linux's sysfs writes them: `size` like `32K` or `1024K`); nil when it
    /// names no L1 data and no L2 cache.
    public static func read(sysfs directory: String) -> MachineCaches? {
        var sizes: [Int: Int] = [:]
        for index in 0..<16 {
            let entry = "\(directory)/index\(index)/"
            guard let level = readLine(entry + "level").flatMap({ Int($0) }),
                  let type = readLine(entry + "type"),
                  let size = readLine(entry + "size").flatMap(parseSize) else { continue }
            guard type == "Data" || type == "Unified" else { continue }
            sizes[level] = size
        }
        guard let l1d = sizes[1], let l2 = sizes[2] else { return nil }
        return MachineCaches(l1d: l1d, l2: l2, l3: sizes[3] ?? 0, source: "sysfs")
    }

    /// `32K`, `1024K`, `32M`, `65536` → bytes; nil for anything else.
    public static func parseSize(_ text: String) -> Int? {
        guard let last = text.last else { return nil }
        let multiplier: Int
        var digits = Substring(text)
        switch last {
        case "K", "k": multiplier = 1 << 10; digits = digits.dropLast()
        case "M", "m": multiplier = 1 << 20; digits = digits.dropLast()
        case "G", "g": multiplier = 1 << 30; digits = digits.dropLast()
        default: multiplier = 1
        }
        guard let value = Int(digits), value > 0 else { return nil }
        return value * multiplier
    }

    static func fromSysconf() -> MachineCaches? {
        #if canImport(Glibc)
        let l1d = sysconf(Int32(_SC_LEVEL1_DCACHE_SIZE)), l2 = sysconf(Int32(_SC_LEVEL2_CACHE_SIZE))
        let l3 = sysconf(Int32(_SC_LEVEL3_CACHE_SIZE))
        guard l1d > 0, l2 > 0 else { return nil }
        return MachineCaches(l1d: l1d, l2: l2, l3: max(l3, 0), source: "sysconf")
        #else
        return nil
        #endif
    }

    /// The first line of a small text file, trimmed; nil if unreadable.
    private static func readLine(_ path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 64)
        guard fgets(&buffer, Int32(buffer.count), file) != nil else { return nil }
        let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return String(text.filter { !$0.isWhitespace })
    }

    /// E.g. `L1d 32 KB, L2 1 MB, L3 32 MB per core (sysfs)`.
    public var description: String {
        func size(_ b: Int) -> String { b >= 1 << 20 && b % (1 << 20) == 0 ? "\(b >> 20) MB" : "\(b >> 10) KB" }
        return "L1d \(size(l1d)), L2 \(size(l2)), L3 \(l3 > 0 ? size(l3) : "none") (\(source))"
    }
}
