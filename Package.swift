// swift-tools-version:6.0
// BatchNormKit — batch normalization and the small networks around it, for Swift on Linux.
import PackageDescription

/// Kernels are compiled with bounds checks off in release builds only through
/// unsafe-pointer hot loops; no unsafe flags here, so the package stays usable
/// as a dependency. `make bench` adds `-target-cpu native` from the command line.
let package = Package(
    name: "BatchNormKit",
    // Linux only (OpenBLAS and LAPACKE through pkg-config, Glibc): no Apple platforms are declared.
    products: [
        .library(name: "BatchNormKit", targets: ["BatchNormKit"]),
        .library(name: "BatchNormReference", targets: ["BatchNormReference"]),
        // Data parallelism across processes and machines; needs Open MPI (the core does not).
        .library(name: "BatchNormKitMPI", targets: ["BatchNormKitMPI"]),
        .executable(name: "bnkit", targets: ["bnkit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // `swift package generate-documentation` (make docs); a plugin only, nothing is linked.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
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
        .systemLibrary(
            name: "CBatchNormKitMPI",
            pkgConfig: "ompi-c",
            providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]
        ),
        // Header only: a vectorised square root and streaming stores (Swift has neither).
        .systemLibrary(name: "CBatchNormKitIntrinsics"),

        // MARK: - Numerics
        // What the kernel modules share: vectors, the worker pool, per-thread settings.
        .target(name: "KernelSupport", dependencies: ["CBatchNormKitIntrinsics"], exclude: ["README.md"]),
        .target(name: "BatchNormKernels", dependencies: ["KernelSupport", "CBatchNormKitIntrinsics"], exclude: ["README.md"]),
        // The 16-lane sgemm (`MatrixKernel`).
        .target(name: "MatrixKernels", dependencies: ["KernelSupport"], exclude: ["README.md"]),
        .target(name: "BatchNormReference"),

        // MARK: - Library
        .target(
            name: "BatchNormKit",
            dependencies: ["KernelSupport", "BatchNormKernels", "MatrixKernels", "CBatchNormKitBLAS", "CBatchNormKitZlib"]
        ),

        .target(name: "BatchNormKitMPI", dependencies: ["BatchNormKit", "CBatchNormKitMPI"]),

        // MARK: - Tools
        .executableTarget(
            name: "bnkit",
            dependencies: [
                "BatchNormKit",
                "BatchNormKitMPI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "bnkbench",
            dependencies: ["BatchNormKit", "KernelSupport", "BatchNormKernels", "MatrixKernels", "BatchNormReference", "BatchNormTestSupport",
                           "CBatchNormKitBLAS",
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
        // The MPI tests' rank program and the MPI benchmark, run under mpirun (`make bench-mpi`).
        .executableTarget(
            name: "bnkmpi",
            dependencies: ["BatchNormKit", "BatchNormKitMPI", "BatchNormReference", "BatchNormTestSupport"],
            path: "Benchmarks/bnkmpi"
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
            dependencies: ["KernelSupport", "BatchNormKernels", "MatrixKernels", "BatchNormReference", "BatchNormTestSupport"]
        ),
        .testTarget(
            name: "BatchNormKitTests",
            dependencies: ["BatchNormKit", "KernelSupport", "BatchNormReference", "BatchNormTestSupport"],
            resources: [.copy("Fixtures")]
        ),
        // Launch mpirun on the built bnkit and bnkmpi (no MPI import: the ranks are processes).
        .testTarget(name: "BatchNormKitMPITests"),
        // The command line's own logic (progress-line layout); an executable target, testable since Swift 5.5.
        .testTarget(name: "bnkitTests", dependencies: ["bnkit"]),
    ],
    swiftLanguageModes: [.v5]
)
