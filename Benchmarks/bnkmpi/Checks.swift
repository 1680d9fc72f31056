import BatchNormKit
import BatchNormReference
import BatchNormTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A failed expectation of a check: ends the job through the caller's abort.
struct CheckFailure: Error, CustomStringConvertible {
    let description: String
}

func expect(_ condition: Bool, _ message: @autoclosure () -> String) throws {
    if !condition { throw CheckFailure(description: message()) }
}

/// |got − want| ≤ atol + rtol·|want| everywhere; names the worst element otherwise.
func expectClose(_ got: [Float], _ want: [Float], rtol: Double, atol: Double, _ what: String) throws {
    try expect(got.count == want.count, "\(what): \(got.count) values, expected \(want.count)")
    for i in got.indices {
        let error = abs(Double(got[i]) - Double(want[i])), bound = atol + rtol * abs(Double(want[i]))
        try expect(error <= bound, "\(what)[\(i)]: \(got[i]) vs \(want[i]) (error \(error) > \(bound))")
    }
}

func runCheck(_ name: String, _ group: ProcessGroup) throws {
    switch name {
    case "collectives": try checkCollectives(group)
    case "syncbn": try checkSyncBatchNorm(group)
    case "train": try checkTraining(group, failAtStep: nil)
    case "fail-throw": try checkTraining(group, failAtStep: 3)
    case "fail-kill": try checkTraining(group, killAtStep: 2)
    case "mismatch":
        // the last rank was started with another batch size
        try group.agree(on: [("--epochs", "1"), ("--batch-size", group.rank == group.size - 1 ? "64" : "128")])
        throw CheckFailure(description: "agree(on:) accepted different batch sizes")
    default: throw CheckFailure(description: "unknown check \(name)")
    }
}

/// A rank's test values: different on every rank, known to every rank.
func rankValues(_ rank: Int, count: Int) -> [Double] {
    var rng = ReferenceRandom(seed: 1000 + UInt64(rank))
    return rng.normals(count).map { Double($0) * 1e3 + 1 / Double(rank + 3) }
}

/// All-reduce against the sum in rank order (rtol 1e-12: Doubles summed in
/// another order), the same bits on every rank (rank 0's bits broadcast and
/// compared); broadcast from the last rank, exact; a barrier that no rank
/// leaves before the last arrives (rank r arrives 0.15·r s late); mismatched
/// counts throw on every rank.
func checkCollectives(_ group: ProcessGroup) throws {
    let n = 10_001, ranks = group.size
    let values = UnsafeMutableBufferPointer<Double>.allocate(capacity: n)
    defer { values.deallocate() }
    _ = values.initialize(from: rankValues(group.rank, count: n))
    try group.allReduceSum(values)
    let all = (0..<ranks).map { rankValues($0, count: n) }
    for i in 0..<n {
        let want = all.reduce(0) { $0 + $1[i] }
        try expect(abs(values[i] - want) <= 1e-12 * max(1, abs(want)), "sum[\(i)] = \(values[i]), expected \(want)")
    }
    let bits = UnsafeMutableBufferPointer<Double>.allocate(capacity: n)
    defer { bits.deallocate() }
    _ = bits.initialize(from: values)
    try group.broadcast(bits, from: 0)
    for i in 0..<n { try expect(bits[i].bitPattern == values[i].bitPattern, "rank \(group.rank) sum[\(i)] has other bits than rank 0's") }

    let root = ranks - 1
    _ = values.initialize(from: group.rank == root ? all[root] : Array(repeating: -7, count: n))
    try group.broadcast(values, from: root)
    for i in 0..<n { try expect(values[i].bitPattern == all[root][i].bitPattern, "broadcast[\(i)] from rank \(root)") }

    usleep(UInt32(150_000 * group.rank))
    let arrival = UnsafeMutableBufferPointer<Double>.allocate(capacity: ranks)
    defer { arrival.deallocate() }
    arrival.initialize(repeating: 0)
    arrival[group.rank] = wallClock()
    try group.barrier()
    let left = wallClock()
    try group.allReduceSum(arrival)
    try expect(left >= arrival.max()! - 0.01, "rank \(group.rank) left the barrier at \(left), before the last arrival \(arrival.max()!)")

    let uneven = UnsafeMutableBufferPointer<Double>.allocate(capacity: group.rank == 0 ? 3 : 4)
    defer { uneven.deallocate() }
    uneven.initialize(repeating: 1)
    var threw = false
    do { try group.allReduceSum(uneven) } catch BatchNormKitError.invalidArgument { threw = true }
    try expect(threw, "all-reduce of 3 values on rank 0 and 4 elsewhere did not throw")
}

/// "fault at <seconds since 1970>" on stdout, so the tests time the job's end from the fault.
func announceFault() {
    print("fault at \(wallClock())")
    fflush(stdout)
}

func wallClock() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_REALTIME, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

/// SyncBatchNorm on each rank's rows of a (29, 5, 3) batch against one
/// BatchNorm1d on the whole batch, computed on every rank: forward, dx,
/// running statistics, evaluation mode, and dγ, dβ summed over the ranks.
/// Tolerances as the thread-rank tests': Float32 sums in another order.
func checkSyncBatchNorm(_ group: ProcessGroup) throws {
    let n = 29, c = 5, l = 3, per = c * l
    var rng = ReferenceRandom(seed: 107)
    let x = rng.batch(n: n, c: c, l: l).map { $0 + 50 }, dy = rng.normals(n * per)
    let whole = try BatchNorm1d(numFeatures: c)
    let wholeY = try whole.forward(Tensor(shape: [n, c, l], scalars: x)).scalars
    let wholeDx = try whole.backward(Tensor(shape: [n, c, l], scalars: dy)).scalars
    let rows = (n * group.rank / group.size)..<(n * (group.rank + 1) / group.size)
    let slice = (rows.lowerBound * per)..<(rows.upperBound * per)
    let norm = try SyncBatchNorm(numFeatures: c, processGroup: group)
    let y = try norm.forward(Tensor(shape: [rows.count, c, l], scalars: Array(x[slice]))).scalars
    let dx = try norm.backward(Tensor(shape: [rows.count, c, l], scalars: Array(dy[slice]))).scalars
    try expectClose(y, Array(wholeY[slice]), rtol: 1e-5, atol: 2e-5, "y")
    try expectClose(dx, Array(wholeDx[slice]), rtol: 1e-5, atol: 2e-5, "dx")
    try expectClose(norm.runningMean!.scalars, whole.runningMean!.scalars, rtol: 1e-5, atol: 2e-5, "running_mean")
    try expectClose(norm.runningVar!.scalars, whole.runningVar!.scalars, rtol: 1e-5, atol: 2e-5, "running_var")
    let grads = UnsafeMutableBufferPointer<Double>.allocate(capacity: 2 * c)
    defer { grads.deallocate() }
    for f in 0..<c { grads[f] = Double(norm.weight!.grad.scalars[f]); grads[c + f] = Double(norm.bias!.grad.scalars[f]) }
    try group.allReduceSum(grads)
    try expectClose((0..<c).map { Float(grads[$0]) }, whole.weight!.grad.scalars, rtol: 1e-5, atol: 1e-4, "Σ dγ")
    try expectClose((0..<c).map { Float(grads[c + $0]) }, whole.bias!.grad.scalars, rtol: 1e-5, atol: 1e-4, "Σ dβ")
    whole.eval(); norm.eval()
    let wholeEval = try whole.forward(Tensor(shape: [n, c, l], scalars: x)).scalars
    let eval = try norm.forward(Tensor(shape: [rows.count, c, l], scalars: Array(x[slice]))).scalars
    try expectClose(eval, Array(wholeEval[slice]), rtol: 1e-5, atol: 2e-5, "eval y")
}

/// Two epochs of a small seed network (batch 12, a final batch of 10) on
/// synthetic data on the MPI ranks, against the same run in one process
/// (run on every rank): parameters to rtol 1e-4 (the same arithmetic in
/// another order over 18 steps, as the thread-rank test), losses to 1e-5,
/// and every rank's parameters bit-identical to rank 0's.
/// `failAtStep`: the last rank's data has a label out of range at that
/// step (bad data on one rank); `killAtStep`: the last rank kills itself.
func checkTraining(_ group: ProcessGroup, failAtStep: Int? = nil, killAtStep: Int? = nil) throws {
    let samples = 106, features = 7, classes = 3
    var rng = ReferenceRandom(seed: 113)
    let inputs = rng.normals(samples * features).map { $0 + 0.5 }
    let labels = (0..<samples).map { Int32($0 % classes) }
    let data = try LabeledSamples(features: inputs, labels: labels, featureCount: features)
    let configuration = TrainingConfiguration(epochs: 2, batchSize: 12, learningRate: 0.1, momentum: 0.9, seed: 4)
    let last = group.rank == group.size - 1
    let model = try SeedNetwork(inputSize: features, hiddenSizes: [6, 5], classes: classes, seed: 9, processGroup: group)
    let replica = try Trainer(model: model, configuration: configuration, processGroup: group)
    if last, let failAtStep {
        // every label, so that the step fails whichever rows this rank gets
        let bad = try LabeledSamples(features: inputs, labels: labels.map { _ in 99 }, featureCount: features)
        var step = 0
        _ = try replica.trainEpoch(on: data) { _ in step += 1 }
        try expect(step > failAtStep, "too few steps before the fault")
        announceFault()
        _ = try replica.trainEpoch(on: bad)
        throw CheckFailure(description: "training on labels out of range did not throw")
    }
    let epochs = try (0..<2).map { _ in
        try replica.trainEpoch(on: data) { progress in
            if last, let killAtStep, progress.batch == killAtStep { announceFault(); kill(getpid(), SIGKILL) }
        }
    }
    try expect(failAtStep == nil && killAtStep == nil, "rank \(group.rank) finished although the last rank failed")

    let single = try SeedNetwork(inputSize: features, hiddenSizes: [6, 5], classes: classes, seed: 9)
    let trainer = try Trainer(model: single, configuration: configuration)
    let want = try (0..<2).map { _ in try trainer.trainEpoch(on: data) }
    for (index, (got, reference)) in zip(model.parameters(), single.parameters()).enumerated() {
        try expectClose(got.value.scalars, reference.value.scalars, rtol: 1e-4, atol: 1e-5, "parameter \(index)")
    }
    for (got, expected) in zip(epochs, want) {
        try expect(abs(got.loss - expected.loss) <= 1e-5 * max(1, expected.loss) && got.samples == expected.samples
                   && got.accuracy == expected.accuracy,
                   "epoch: loss \(got.loss) vs \(expected.loss), samples \(got.samples) vs \(expected.samples)")
    }
    let mine = model.parameters().flatMap(\.value.scalars).map(Double.init)
    let rankZero = UnsafeMutableBufferPointer<Double>.allocate(capacity: mine.count)
    defer { rankZero.deallocate() }
    _ = rankZero.initialize(from: mine)
    try group.broadcast(rankZero, from: 0)
    try expect(zip(rankZero, mine).allSatisfy { $0.bitPattern == $1.bitPattern }, "rank \(group.rank)'s parameters differ from rank 0's")
}
