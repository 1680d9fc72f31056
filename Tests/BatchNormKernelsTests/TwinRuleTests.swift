import Foundation
import Testing

// The rule "one name finds the kernel, its twin, its test and its bench
// case", checked on the sources: every `public static func NAME` of
// BatchNormKernel (files Sources/BatchNormKernels/BatchNormKernel*.swift),
// GroupNormKernel (GroupNormKernel*.swift there) and MatrixKernel
// (Sources/MatrixKernels/MatrixKernel*.swift) must have
// - a twin `public static func NAME` in BatchNormReference / GroupNormReference / MatrixReference,
// - a call `BatchNormKernel.NAME(` / `GroupNormKernel.NAME(` in this test target,
// - a bench case `"kernel.NAME …"` / `"kernel.gn.NAME …"` / `"kernel.gemm.NAME …"` in Benchmarks/bnkbench.
// And every twin in those three reference files must
// name a kernel (layer-level twins live in BatchNormReference+*.swift).

@Suite("The twin rule: every public kernel has a twin, a test and a bench case")
struct TwinRuleTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    static func sources(_ directory: String, prefix: String = "") throws -> [(name: String, text: String)] {
        let dir = root.appendingPathComponent(directory)
        return try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
            .filter { $0.hasPrefix(prefix) && $0.hasSuffix(".swift") }
            .map { ($0, try String(contentsOf: dir.appendingPathComponent($0), encoding: .utf8)) }
    }

    static func publicStaticFunctions(_ text: String) -> Set<String> {
        let pattern = try! NSRegularExpression(pattern: #"public static func ([A-Za-z][A-Za-z0-9]*)"#)
        let range = NSRange(text.startIndex..., in: text)
        return Set(pattern.matches(in: text, range: range).map { String(text[Range($0.range(at: 1), in: text)!]) })
    }

    /// Twins' helpers that are not kernels, each with its reason.
    static let helpers: [String: String] = [
        "GroupNormReference.swift statistics": "the oracle of GroupNormKernel.forward's statistics outputs",
        "MatrixReference.swift absoluteScale": "the scale of MatrixKernel.multiply's rounding error, for its tolerance",
    ]

    /// (kernel enum, its module's directory, its twin's file, the bench case prefix)
    static let families = [("BatchNormKernel", "Sources/BatchNormKernels", "BatchNormReference.swift", "kernel."),
                           ("GroupNormKernel", "Sources/BatchNormKernels", "GroupNormReference.swift", "kernel.gn."),
                           ("MatrixKernel", "Sources/MatrixKernels", "MatrixReference.swift", "kernel.gemm.")]

    @Test("every kernel has a twin, a test and a bench case; every twin names a kernel")
    func rule() throws {
        let tests = try Self.sources("Tests/BatchNormKernelsTests").map(\.text).joined()
        let bench = try Self.sources("Benchmarks/bnkbench").map(\.text).joined()
        let references = try Self.sources("Sources/BatchNormReference")
        var kernelCount = 0
        for (kernel, directory, twinFile, benchPrefix) in Self.families {
            let kernels = try Self.sources(directory, prefix: kernel)
                .reduce(into: Set<String>()) { $0.formUnion(Self.publicStaticFunctions($1.text)) }
            let twins = Self.publicStaticFunctions(try #require(references.first { $0.name == twinFile }).text)
            kernelCount += kernels.count
            for name in kernels.sorted() {
                #expect(twins.contains(name), "\(kernel).\(name) has no twin in \(twinFile)")
                #expect(tests.contains("\(kernel).\(name)("), "\(kernel).\(name) is not called by Tests/BatchNormKernelsTests")
                #expect(bench.contains("\"\(benchPrefix)\(name) "), "\(kernel).\(name) has no bench case \(benchPrefix)\(name)")
            }
            for name in twins.subtracting(kernels).sorted() where Self.helpers["\(twinFile) \(name)"] == nil {
                Issue.record("\(twinFile) has \(name), which names no \(kernel) kernel (layer twins: BatchNormReference+*.swift)")
            }
            // the scan itself must see each family (a moved directory must not pass silently)
            #expect(!kernels.isEmpty, "no public \(kernel) kernels in \(directory)")
        }
        #expect(kernelCount >= 10, "found only \(kernelCount) public kernels")
    }
}
