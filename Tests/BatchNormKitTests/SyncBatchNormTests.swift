import Foundation
import Testing
import BatchNormReference
@testable import BatchNormKit

// SyncBatchNorm on ranks that are threads: split one batch over the ranks and
// every rank must see what one BatchNorm1d on the whole batch computes, to
// Float32 rounding of differently ordered sums (rtol 1e-5, atol 2e-5 on O(1)
// values; 1e-4 on dγ, dβ, which are sums over the whole batch).

/// Runs `body(rank)` on `size` threads of their own and waits for all;
/// rethrows the first error.
func onRanks(_ size: Int, _ body: @escaping @Sendable (Int) throws -> Void) throws {
    let done = DispatchGroup()
    let errors = ErrorBox()
    // the Thread objects stay referenced until every rank is done
    var threads: [Thread] = []
    for rank in 0..<size {
        done.enter()
        let thread = Thread {
            do { try body(rank) } catch { errors.record(error) }
            done.leave()
        }
        threads.append(thread)
        thread.start()
    }
    done.wait()
    withExtendedLifetime(threads) {}
    if let error = errors.first { throw error }
}

final class ErrorBox: @unchecked Sendable {
    private let lock = NSLock()
    private var errors: [Error] = []
    func record(_ e: Error) { lock.lock(); errors.append(e); lock.unlock() }
    var first: Error? { lock.lock(); defer { lock.unlock() }; return errors.first }
    var count: Int { lock.lock(); defer { lock.unlock() }; return errors.count }
}

/// Per-rank results; each rank's thread stores its own under the lock (the
/// arrays are shared, so unsynchronized writes would race).
final class RankResults: @unchecked Sendable {
    var y: [[Float]], dx: [[Float]], dGamma: [[Float]], dBeta: [[Float]], runningMean: [[Float]], runningVar: [[Float]]
    var eval: [[Float]]
    private let lock = NSLock()
    init(_ size: Int) {
        y = Array(repeating: [], count: size); dx = y; dGamma = y; dBeta = y; runningMean = y; runningVar = y; eval = y
    }
    func set(_ field: ReferenceWritableKeyPath<RankResults, [[Float]]>, _ rank: Int, _ value: [Float]) {
        lock.lock(); self[keyPath: field][rank] = value; lock.unlock()
    }
}

@Suite("SyncBatchNorm over ThreadProcessGroup")
struct SyncBatchNormTests {
    @Test("ranks holding slices of a batch compute what BatchNorm1d computes on the whole batch",
          arguments: [[0, 3, 7, 10], [0, 1, 10], [0, 10]])
    func matchesWholeBatch(cuts: [Int]) throws {
        let n = cuts.last!, c = 5, l = 3, size = cuts.count - 1
        var rng = ReferenceRandom(seed: 107)
        let x = rng.batch(n: n, c: c, l: l).map { $0 + 50 }, dy = rng.normals(n * c * l)
        // the reference: one BatchNorm1d on everything
        let whole = try BatchNorm1d(numFeatures: c)
        let wholeY = try whole.forward(.of([n, c, l], x)).scalars
        let wholeDx = try whole.backward(.of([n, c, l], dy)).scalars
        whole.eval()
        let wholeEval = try whole.forward(.of([n, c, l], x)).scalars

        let groups = try ThreadProcessGroup.make(size: size)
        let results = RankResults(size)
        try onRanks(size) { rank in
            let rows = cuts[rank]..<cuts[rank + 1], per = c * l
            let mine = Array(x[(rows.lowerBound * per)..<(rows.upperBound * per)])
            let myDy = Array(dy[(rows.lowerBound * per)..<(rows.upperBound * per)])
            let norm = try SyncBatchNorm(numFeatures: c, processGroup: groups[rank])
            results.set(\.y, rank, try norm.forward(.of([rows.count, c, l], mine)).scalars)
            results.set(\.dx, rank, try norm.backward(.of([rows.count, c, l], myDy)).scalars)
            results.set(\.dGamma, rank, norm.weight!.grad.scalars)
            results.set(\.dBeta, rank, norm.bias!.grad.scalars)
            results.set(\.runningMean, rank, norm.runningMean!.scalars)
            results.set(\.runningVar, rank, norm.runningVar!.scalars)
            norm.eval()
            results.set(\.eval, rank, try norm.forward(.of([rows.count, c, l], mine)).scalars)
        }
        func close(_ got: [Float], _ want: [Float], _ what: String, atol: Double = 2e-5) {
            let r = compareToReference(got, want, rtol: 1e-5, atol: atol)
            #expect(r.ok, "\(cuts) \(what): \(r.worst)")
        }
        close(results.y.flatMap { $0 }, wholeY, "y")
        close(results.dx.flatMap { $0 }, wholeDx, "dx")
        close(results.eval.flatMap { $0 }, wholeEval, "eval y")
        // dγ, dβ: each rank's own share, adding up to the whole batch's
        let sumGamma = (0..<c).map { f in results.dGamma.reduce(Float(0)) { $0 + $1[f] } }
        let sumBeta = (0..<c).map { f in results.dBeta.reduce(Float(0)) { $0 + $1[f] } }
        close(sumGamma, whole.weight!.grad.scalars, "Σ dγ", atol: 1e-4)
        close(sumBeta, whole.bias!.grad.scalars, "Σ dβ", atol: 1e-4)
        for rank in 0..<size {
            close(results.runningMean[rank], whole.runningMean!.scalars, "running_mean rank \(rank)")
            close(results.runningVar[rank], whole.runningVar!.scalars, "running_var rank \(rank)")
        }
    }

    @Test("mismatched all-reduce counts throw on every rank; one value over all ranks is rejected on every rank")
    func errors() throws {
        let groups = try ThreadProcessGroup.make(size: 2)
        let failures = ErrorBox()
        try onRanks(2) { rank in
            let values = UnsafeMutableBufferPointer<Double>.allocate(capacity: rank == 0 ? 3 : 4)
            defer { values.deallocate() }
            values.initialize(repeating: 1)
            do { try groups[rank].allReduceSum(values) } catch { failures.record(error) }
        }
        #expect(failures.count == 2)
        #expect(throws: BatchNormKitError.self) { try ThreadProcessGroup.make(size: 0) }
        // a whole job of one value per feature: nothing to normalize, on both ranks
        let single = try ThreadProcessGroup.make(size: 1)
        let norm = try SyncBatchNorm(numFeatures: 2, processGroup: single[0])
        #expect(throws: BatchNormKitError.self) { try norm.forward(.of([1, 2], [1, 2])) }
        #expect(throws: BatchNormKitError.self) { try SyncBatchNorm(numFeatures: 0, processGroup: single[0]) }
    }

    @Test("the all-reduce sums in rank order, the same bits on every rank")
    func allReduce() throws {
        let size = 3
        let groups = try ThreadProcessGroup.make(size: size)
        let results = RankResults(size)
        try onRanks(size) { rank in
            // an allocated buffer, as the library's callers use
            let values = UnsafeMutableBufferPointer<Double>.allocate(capacity: 5)
            defer { values.deallocate() }
            for i in 0..<5 { values[i] = Double(rank * 10 + i) + 0.1 }
            for _ in 0..<3 {
                for i in 0..<5 { values[i] /= 3 }
                try groups[rank].allReduceSum(values)
            }
            results.set(\.y, rank, values.map(Float.init))
        }
        #expect(results.y[0] == results.y[1] && results.y[1] == results.y[2])
        // (Σ_r v_r/3) three times over, as a plain loop computes it
        var want = (0..<5).map { i in (0..<size).map { Double($0 * 10 + i) + 0.1 } }
        for _ in 0..<3 { let s = (0..<5).map { i in want[i].reduce(0) { $0 + $1 / 3 } }; want = s.map { Array(repeating: $0, count: size) } }
        #expect(compareToReference(results.y[0], want.map { $0[0] }, rtol: 1e-6, atol: 0).ok)
    }
}

/// Per-rank final parameters and epoch results of a data-parallel run.
final class RankTraining: @unchecked Sendable {
    private let lock = NSLock()
    var parameters: [[[Float]]]
    var epochs: [[EpochTraining]]
    init(_ size: Int) { parameters = Array(repeating: [], count: size); epochs = Array(repeating: [], count: size) }
    func set(_ rank: Int, _ p: [[Float]], _ e: [EpochTraining]) { lock.lock(); parameters[rank] = p; epochs[rank] = e; lock.unlock() }
}

extension SyncBatchNormTests {
    /// 2 and 3 ranks against one process, 2 epochs of a small seed network on
    /// synthetic data: batch 12 (3 ranks: 4 rows each; 2 ranks: 6) and a final
    /// batch of 10 (unequal shares for 3 ranks). Tolerances: the same
    /// arithmetic in a different order over 2 epochs · 9 steps, rtol 1e-4.
    @Test("data-parallel training over ranks follows single-process training", arguments: [2, 3])
    func dataParallelTraining(ranks: Int) throws {
        let samples = 106, features = 7, classes = 3
        var rng = ReferenceRandom(seed: 113)
        let data = try LabeledSamples(features: rng.normals(samples * features).map { $0 + 0.5 },
                                      labels: (0..<samples).map { Int32($0 % classes) }, featureCount: features)
        let configuration = TrainingConfiguration(epochs: 2, batchSize: 12, learningRate: 0.1, momentum: 0.9, seed: 4)
        let single = try SeedNetwork(inputSize: features, hiddenSizes: [6, 5], classes: classes, seed: 9)
        let trainer = try Trainer(model: single, configuration: configuration)
        let want = try (0..<2).map { _ in try trainer.trainEpoch(on: data) }

        let groups = try ThreadProcessGroup.make(size: ranks)
        let results = RankTraining(ranks)
        try onRanks(ranks) { rank in
            let model = try SeedNetwork(inputSize: features, hiddenSizes: [6, 5], classes: classes, seed: 9,
                                        processGroup: groups[rank])
            let replica = try Trainer(model: model, configuration: configuration, processGroup: groups[rank])
            let epochs = try (0..<2).map { _ in try replica.trainEpoch(on: data) }
            results.set(rank, model.parameters().map(\.value.scalars), epochs)
        }
        let reference = single.parameters().map(\.value.scalars)
        for rank in 0..<ranks {
            for (index, values) in results.parameters[rank].enumerated() {
                let r = compareToReference(values, reference[index], rtol: 1e-4, atol: 1e-5)
                #expect(r.ok, "\(ranks) ranks, rank \(rank), parameter \(index): \(r.worst)")
            }
            for (got, expected) in zip(results.epochs[rank], want) {
                #expect(abs(got.loss - expected.loss) <= 1e-5 * max(1, expected.loss) && got.samples == expected.samples,
                        "\(ranks) ranks, rank \(rank): loss \(got.loss) vs \(expected.loss), samples \(got.samples) vs \(expected.samples)")
                #expect(got.accuracy == expected.accuracy)
            }
        }
        // every replica holds the same bits: they applied the same summed gradients
        #expect(results.parameters.allSatisfy { $0 == results.parameters[0] })
    }
}
