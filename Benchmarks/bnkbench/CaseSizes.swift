// The sizes of every case (full runs and --smoke) in one list.

import BatchNormKit
import BatchNormKernels

/// Sizes of every case; --smoke swaps in tiny ones.
struct CaseSizes {
    var batchNorm: [BatchNormShape]
    /// BatchNorm → ReLU, fused (bn-relu.*).
    var batchNormReLU: [BatchNormShape]
    /// LayerNorm (groups 1, L 1) and GroupNorm shapes.
    var groupNorm: [GroupNormShape]
    /// Seed network: input, hidden widths, classes.
    var input: Int
    var hidden: [Int]
    var classes: Int
    var linearBatch: Int
    var stepBatches: [Int]
    var inferenceBatches: [Int]
    /// The epoch case: samples per epoch (the Fashion-MNIST train split's
    /// 60000 in full runs) and the seed recipe's batch size.
    var epochSamples: Int
    var epochBatch: Int

    static let full = CaseSizes(
        batchNorm: [.init(n: 256, c: 256), .init(n: 256, c: 64), .init(n: 1024, c: 1024), .init(n: 4096, c: 1024),
                    .init(n: 64, c: 4096), .init(n: 16384, c: 256), .init(n: 64, c: 128, l: 256)],
        batchNormReLU: [.init(n: 4096, c: 1024), .init(n: 16384, c: 256)],
        groupNorm: [.init(n: 256, c: 256, groups: 1), .init(n: 4096, c: 1024, groups: 1),
                    .init(n: 64, c: 128, groups: 32, l: 256)],
        input: 784, hidden: [256, 64], classes: 10, linearBatch: 256,
        stepBatches: [64, 256, 1024], inferenceBatches: [64, 256, 1024],
        epochSamples: 60000, epochBatch: 128)

    /// Tiny, except two that reach the kernels' other row groupings
    /// (``BatchNormKernel._rowGroup``): rows 4 KB apart (2 and 4 rows at a
    /// time) and a batch over 1 MB with short rows (one row at a time).
    static let smoke = CaseSizes(
        batchNorm: [.init(n: 8, c: 12), .init(n: 5, c: 17), .init(n: 70, c: 9), .init(n: 4, c: 3, l: 9),
                    .init(n: 22, c: 1024), .init(n: 2051, c: 131)],
        batchNormReLU: [.init(n: 70, c: 9), .init(n: 4, c: 3, l: 9)],
        groupNorm: [.init(n: 5, c: 17, groups: 1), .init(n: 70, c: 9, groups: 1), .init(n: 4, c: 6, groups: 3, l: 9)],
        input: 20, hidden: [12, 6], classes: 3, linearBatch: 8,
        stepBatches: [8], inferenceBatches: [8],
        epochSamples: 512, epochBatch: 128)

    /// Linear layers of the seed network, (in, out).
    var linearShapes: [(Int, Int)] {
        let widths = [input] + hidden + [classes]
        return (0..<(widths.count - 1)).map { (widths[$0], widths[$0 + 1]) }
    }
}

let eps = 1e-5

func tensorShape(_ s: BatchNormShape) -> [Int] { s.l == 1 ? [s.n, s.c] : [s.n, s.c, s.l] }

func doubles(_ t: Tensor) -> [Double] { t.scalars.map(Double.init) }

extension CaseSizes {
    /// The shapes as JSON (`bnkbench --list-shapes`): Scripts/bench_torch.py
    /// runs the same cases from it, so the shapes are listed once.
    var json: String {
        func list<T>(_ items: [T], _ f: (T) -> String) -> String { "[" + items.map(f).joined(separator: ", ") + "]" }
        func dims(_ s: BatchNormShape) -> String { s.l == 1 ? "[\(s.n), \(s.c)]" : "[\(s.n), \(s.c), \(s.l)]" }
        return """
        {"batch_norm": \(list(batchNorm, dims)), "bn_relu": \(list(batchNormReLU, dims)),
         "group_norm": \(list(groupNorm) { "{\"shape\": \(dims(BatchNormShape(n: $0.n, c: $0.c, l: $0.l))), \"groups\": \($0.groups)}" }),
         "linear": \(list(linearShapes) { "[\($0.0), \($0.1)]" }), "linear_batch": \(linearBatch),
         "step_batches": \(list(stepBatches) { "\($0)" }), "inference_batches": \(list(inferenceBatches) { "\($0)" }),
         "epoch_batch": \(epochBatch), "seed_network": {"input": \(input), "hidden": \(list(hidden) { "\($0)" }), "classes": \(classes)}}
        """
    }
}
