import Testing
import BatchNormTestSupport
@testable import BatchNormKit

// Helpers of the fused-normalization tests (FusedBatchNormReLUTests,
// FusedGroupNormReLUTests): two networks built alike, one fused and one not,
// stepped together and compared with == (no tolerance).

/// Two networks built alike; `fused` keeps the default, `plain` runs every layer alone.
func fusedPair<N: Layer>(_ make: () throws -> N, sequentials: (N) -> [Sequential]) rethrows -> (fused: N, plain: N) {
    let fused = try make(), plain = try make()
    for s in sequentials(plain) { s.fusesBatchNormReLU = false }
    return (fused, plain)
}

/// Forward, loss backward and an SGD step on both networks; every value compared with ==.
func stepBothExpectingIdentical(_ fused: Layer, _ plain: Layer, input: Tensor, labels: [Int32], steps: Int) throws {
    let lossF = CrossEntropyLoss(), lossP = CrossEntropyLoss()
    let sgdF = try SGD(parameters: fused.parameters(), learningRate: 0.1, momentum: 0.9)
    let sgdP = try SGD(parameters: plain.parameters(), learningRate: 0.1, momentum: 0.9)
    for step in 0..<steps {
        sgdF.zeroGrad(); sgdP.zeroGrad()
        let yF = try fused.forward(input), yP = try plain.forward(input)
        #expect(yF.scalars == yP.scalars, "logits differ at step \(step)")
        let lF = try lossF.forward(logits: yF, labels: labels), lP = try lossP.forward(logits: yP, labels: labels)
        #expect(lF == lP)
        let dxF = try fused.backward(try lossF.backward(), needsInputGradient: true)
        let dxP = try plain.backward(try lossP.backward(), needsInputGradient: true)
        #expect(dxF?.scalars == dxP?.scalars, "input gradients differ at step \(step)")
        for ((name, pF), (_, pP)) in zip(fused.namedParameters(), plain.namedParameters()) {
            #expect(pF.grad.scalars == pP.grad.scalars, "\(name).grad differs at step \(step)")
        }
        sgdF.step(); sgdP.step()
    }
    expectSameState(fused, plain)
}

/// Every state entry (parameters, running statistics, counters) equal, under the same names.
func expectSameState(_ a: Layer, _ b: Layer) {
    let ea = a.namedStateEntries(prefix: ""), eb = b.namedStateEntries(prefix: "")
    #expect(ea.map(\.name) == eb.map(\.name))
    for ((name, x), (_, y)) in zip(ea, eb) {
        switch (x, y) {
        case let (.parameter(p), .parameter(q)): #expect(p.value.scalars == q.value.scalars, "\(name)")
        case let (.buffer(p), .buffer(q)): #expect(p.scalars == q.scalars, "\(name)")
        case let (.batchCounter(p), .batchCounter(q)): #expect(p.numBatchesTracked == q.numBatchesTracked, "\(name)")
        default: Issue.record("\(name): entries of different kinds")
        }
    }
}

func randomInput(_ shape: [Int], seed: UInt64) -> Tensor {
    var random = ReferenceRandom(seed: seed)
    return try! Tensor(shape: shape, scalars: random.normals(shape.reduce(1, *)))
}
