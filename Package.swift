// swift-tools-version:6.0
// BatchNormKit — batch normalization and the small networks around it, for Swift on Linux.
import PackageDescription

/// Kernels are compiled with bounds checks off in release builds only through
/// unsafe-pointer hot loops; no unsafe flags here, so the package stays usable
/// as a dependency. `make bench` adds `-target-cpu native` from the command line.
let package = Package(
    name: "BatchNormKit",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "BatchNormKit", targets: ["BatchNormKit"]),
        .library(name: "BatchNormReference", targets: ["BatchNormReference"]),
        .executable(name: "bnkit", targets: ["bnkit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // MARK: - C shims (implementation details, never products)
        .systemLibrary(
            name: "CBatchNormKitBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev", "liblapacke-dev"])]
        ),
        .systemLibrary(
            name: "CBatchNormKitZlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        // Header only: a vectorised square root and streaming stores (Swift has neither).
        .systemLibrary(name: "CBatchNormKitIntrinsics"),

        // MARK: - Numerics
        .target(name: "BatchNormKernels", dependencies: ["CBatchNormKitIntrinsics"], exclude: ["README.md"]),
        .target(name: "BatchNormReference"),

        // MARK: - Library
        .target(
            name: "BatchNormKit",
            dependencies: ["BatchNormKernels", "CBatchNormKitBLAS", "CBatchNormKitZlib"]
        ),

        // MARK: - Tools
        .executableTarget(
            name: "bnkit",
            dependencies: [
                "BatchNormKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "bnkbench",
            dependencies: ["BatchNormKit", "BatchNormKernels", "BatchNormReference", "BatchNormTestSupport", "CBatchNormKitBLAS",
                           "CBatchNormKitIntrinsics", "CBatchNormKitMallocCounter",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Benchmarks/bnkbench"
        ),
        // libFuzzer harness over the file parsers (`make fuzz`); a reproducer otherwise.
        .executableTarget(
            name: "bnkfuzz",
            dependencies: ["BatchNormKit"],
            path: "Fuzz/bnkfuzz"
        ),
        // Counts heap allocations by interposing malloc & co.; linked into bnkbench only.
        .target(
            name: "CBatchNormKitMallocCounter",
            path: "Benchmarks/CMallocCounter"
        ),

        // MARK: - Tests
        // Seeded data and oracle comparisons for the tests and the bench; not a product.
        .target(name: "BatchNormTestSupport", path: "Tests/BatchNormTestSupport"),
        .testTarget(
            name: "BatchNormKernelsTests",
            dependencies: ["BatchNormKernels", "BatchNormReference", "BatchNormTestSupport"]
        ),
        .testTarget(
            name: "BatchNormKitTests",
            dependencies: ["BatchNormKit", "BatchNormReference", "BatchNormTestSupport"],
            resources: [.copy("Fixtures")]
        ),
    ],
    swiftLanguageModes: [.v5]
)
