import BatchNormKit
import BatchNormReference
import BatchNormTestSupport
import Foundation

/// One rank's measurement of the seed network's data-parallel step.
struct RankMeasurement {
    var samplesPerSecond = 0.0, stepMilliseconds = 0.0
    var allReduceValues = 0, allReduceMicroseconds = 0.0
}

/// The seed network (784 → 256 → 64 → 10, SyncBatchNorm) trained for one
/// epoch of `steps` global batches of `batch` synthetic samples after a
/// warm-up epoch of 5 batches, then `steps` all-reduces of the step's flat
/// gradient buffer (every parameter + loss sum + correct count) alone.
/// Every rank runs this; the group's ranks share each batch.
func measure(_ group: ProcessGroup?, steps: Int, batch: Int) throws -> RankMeasurement {
    var rng = ReferenceRandom(seed: 21)
    func samples(_ count: Int) throws -> LabeledSamples {
        try LabeledSamples(features: rng.normals(count * 784), labels: (0..<count).map { Int32(($0 * 7) % 10) }, featureCount: 784)
    }
    let warmUp = try samples(5 * batch), timed = try samples(steps * batch)
    let model = try SeedNetwork(seed: 0, processGroup: group)
    let trainer = try Trainer(model: model, configuration: TrainingConfiguration(epochs: 1, batchSize: batch), processGroup: group)
    _ = try trainer.trainEpoch(on: warmUp)
    try group?.barrier()
    let pass = try trainer.trainEpoch(on: timed)
    var result = RankMeasurement()
    result.samplesPerSecond = Double(pass.samples) / pass.seconds
    result.stepMilliseconds = pass.seconds / Double(steps) * 1e3
    result.allReduceValues = model.parameters().reduce(2) { $0 + $1.value.count }
    if let group {
        let buffer = UnsafeMutableBufferPointer<Double>.allocate(capacity: result.allReduceValues)
        defer { buffer.deallocate() }
        buffer.initialize(repeating: 1e-3)
        try group.allReduceSum(buffer)
        try group.barrier()
        let start = ContinuousClock.now
        for _ in 0..<steps { try group.allReduceSum(buffer) }
        let seconds = Double((ContinuousClock.now - start).components.attoseconds) * 1e-18
            + Double((ContinuousClock.now - start).components.seconds)
        result.allReduceMicroseconds = seconds / Double(steps) * 1e6
    }
    return result
}

func report(_ backend: String, ranks: Int, batch: Int, _ m: RankMeasurement) {
    print("{\"backend\":\"\(backend)\",\"ranks\":\(ranks),\"batch\":\(batch),"
          + "\"samples_per_second\":\(String(format: "%.1f", m.samplesPerSecond)),"
          + "\"step_ms\":\(String(format: "%.3f", m.stepMilliseconds)),"
          + "\"allreduce_values\":\(m.allReduceValues),\"allreduce_bytes\":\(m.allReduceValues * 8),"
          + "\"allreduce_us\":\(String(format: "%.1f", m.allReduceMicroseconds))}")
}

func benchMPI(_ group: ProcessGroup, steps: Int, batch: Int) throws {
    let m = try measure(group.size > 1 ? group : nil, steps: steps, batch: batch)
    if group.rank == 0 { report("mpi", ranks: group.size, batch: batch, m) }
}

func benchThreadRanks(_ ranks: Int, steps: Int, batch: Int) throws {
    let groups = try ThreadProcessGroup.make(size: ranks, timeoutSeconds: 120)
    final class Box: @unchecked Sendable { var result: Result<RankMeasurement, Error>? }
    let boxes = (0..<ranks).map { _ in Box() }
    let done = DispatchGroup()
    var threads: [Thread] = []
    for rank in 0..<ranks {
        done.enter()
        let thread = Thread {
            boxes[rank].result = Result { try measure(ranks > 1 ? groups[rank] : nil, steps: steps, batch: batch) }
            if case .failure(let error) = boxes[rank].result! { groups[rank].abort(reason: "\(error)") }
            done.leave()
        }
        threads.append(thread)
        thread.start()
    }
    done.wait()
    withExtendedLifetime(threads) {}
    report("threads", ranks: ranks, batch: batch, try boxes[0].result!.get())
}
