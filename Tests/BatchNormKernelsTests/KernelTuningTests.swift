import Foundation
import Testing
import KernelSupport
@testable import BatchNormKernels

// The caches are read from sysfs and the thresholds derived from them; a fake
// sysfs directory makes the reader's input known, and the Zen 3 caches must
// give back the constants measured there before the thresholds were derived.

@Suite("Machine caches and the thresholds derived from them")
struct KernelTuningTests {
    /// A sysfs-like `cache` directory: (index, level, type, size) per entry.
    static func fakeSysfs(_ entries: [(Int, Int, String, String)]) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bnk-cache-\(UUID().uuidString)")
        for (index, level, type, size) in entries {
            let entry = dir.appendingPathComponent("index\(index)")
            try FileManager.default.createDirectory(at: entry, withIntermediateDirectories: true)
            try "\(level)\n".write(to: entry.appendingPathComponent("level"), atomically: true, encoding: .utf8)
            try "\(type)\n".write(to: entry.appendingPathComponent("type"), atomically: true, encoding: .utf8)
            try "\(size)\n".write(to: entry.appendingPathComponent("size"), atomically: true, encoding: .utf8)
        }
        return dir
    }

    @Test("sizes as sysfs writes them")
    func sizes() {
        #expect(MachineCaches.parseSize("32K") == 32 << 10)
        #expect(MachineCaches.parseSize("1024K") == 1 << 20)
        #expect(MachineCaches.parseSize("32M") == 32 << 20)
        #expect(MachineCaches.parseSize("65536") == 65536)
        #expect(MachineCaches.parseSize("") == nil)
        #expect(MachineCaches.parseSize("K") == nil)
        #expect(MachineCaches.parseSize("0K") == nil)
        #expect(MachineCaches.parseSize("12Q") == nil)
    }

    @Test("a Zen 4 sysfs listing: the instruction cache is skipped, L1d, L2, L3 read")
    func zen4Listing() throws {
        let dir = try Self.fakeSysfs([(0, 1, "Data", "32K"), (1, 1, "Instruction", "32K"),
                                      (2, 2, "Unified", "1024K"), (3, 3, "Unified", "32768K")])
        defer { try? FileManager.default.removeItem(at: dir) }
        let caches = try #require(MachineCaches.read(sysfs: dir.path))
        #expect(caches == MachineCaches(l1d: 32 << 10, l2: 1 << 20, l3: 32 << 20, source: "sysfs"))
        #expect(caches.description == "L1d 32 KB, L2 1 MB, L3 32 MB (sysfs)")
    }

    @Test("no L3 listed: L3 0 and streaming from 2·L2; no L2: nothing read")
    func missingLevels() throws {
        let noL3 = try Self.fakeSysfs([(0, 1, "Data", "48K"), (1, 2, "Unified", "2048K")])
        defer { try? FileManager.default.removeItem(at: noL3) }
        let caches = try #require(MachineCaches.read(sysfs: noL3.path))
        #expect(caches.l3 == 0)
        #expect(KernelTuning.derived(from: caches).streamingThreshold == 2 * (2 << 20) / 4)
        let onlyL1 = try Self.fakeSysfs([(0, 1, "Data", "48K")])
        defer { try? FileManager.default.removeItem(at: onlyL1) }
        #expect(MachineCaches.read(sysfs: onlyL1.path) == nil)
        #expect(MachineCaches.read(sysfs: "/nonexistent/cache") == nil)
    }

    @Test("Zen 3's caches give the constants measured there; Zen 4's double the L2-bound two and stream from 24 MB of working set")
    func derivedValues() {
        let zen3 = KernelTuning.derived(from: MachineCaches(l1d: 32 << 10, l2: 512 << 10, l3: 32 << 20, source: "test"))
        #expect(zen3 == KernelTuning(cacheResidentBytes: 1 << 20, streamingThreshold: 1 << 21, parallelThreshold: 1 << 19))
        let zen4 = KernelTuning.derived(from: MachineCaches(l1d: 32 << 10, l2: 1 << 20, l3: 32 << 20, source: "test"))
        #expect(zen4 == KernelTuning(cacheResidentBytes: 2 << 20, streamingThreshold: 3 << 20, parallelThreshold: 1 << 20))
    }

    @Test("streaming follows a pass's working set: the threshold is a two-array pass's, k arrays stream from 2/k of it")
    func streamingByWorkingSet() {
        // Zen 4's threshold, 3·2²⁰ values: a normalize (x, y) of 2²¹ values — 16 MB —
        // stores normally, a dx pass (dy, x, dx) of as many — 24 MB — streams
        let zen4 = _KernelSettings(threadCount: 1, parallelThreshold: 1 << 30, streamingThreshold: 3 << 20)
        BatchNormKernel._withSettings(zen4) {
            #expect(!_streams(values: 1 << 21, arrays: 2))
            #expect(_streams(values: 1 << 21, arrays: 3))
            #expect(_streams(values: 3 << 20, arrays: 2))
            #expect(!_streams(values: (3 << 20) - 1, arrays: 2))
            #expect(_streams(values: 1 << 21, arrays: 4))
        }
        // threshold 1 (the tests' way to force streaming) streams every pass
        BatchNormKernel._withSettings(_KernelSettings(threadCount: 1, parallelThreshold: 1, streamingThreshold: 1)) {
            #expect(_streams(values: 1, arrays: 2))
        }
        // a threshold too large to double streams nothing (no overflow trap)
        BatchNormKernel._withSettings(_KernelSettings(threadCount: 1, parallelThreshold: 1, streamingThreshold: .max)) {
            #expect(!_streams(values: 1 << 40, arrays: 4))
        }
    }

    @Test("the defaults in force come from this machine's caches")
    func defaultsFromThisMachine() throws {
        #if os(Linux)
        let read = try #require(MachineCaches.read(sysfs: "/sys/devices/system/cpu/cpu0/cache"))
        #expect(MachineCaches.current == read)
        #endif
        #expect(KernelTuning.machine == KernelTuning.derived(from: .current))
        // another suite may change the process-wide values; the scoped
        // settings are how tests steer the kernels, so these stay the defaults
        #expect(KernelTuning.inForce == KernelTuning.machine)
    }
}
