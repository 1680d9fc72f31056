import Foundation
import Testing
@testable import BatchNormKit

// Faults on thread ranks: a rank that fails or never arrives must not leave
// the others waiting forever, and ranks started alike must agree.
@Suite("ThreadProcessGroup faults and start-up agreement")
struct ProcessGroupFaultTests {
    @Test("a rank that aborts wakes the ranks waiting for it: they throw rankFailed naming it, now and later")
    func abortWakesWaitingRanks() throws {
        let groups = try ThreadProcessGroup.make(size: 3)
        let failures = ErrorBox()
        let start = ContinuousClock.now
        try onRanks(3) { rank in
            if rank == 2 {
                usleep(50_000)   // the others are already waiting
                groups[2].abort(reason: "bad data")
                return
            }
            var value = 1.0
            do {
                try withUnsafeMutablePointer(to: &value) { try groups[rank].allReduceSum(UnsafeMutableBufferPointer(start: $0, count: 1)) }
            } catch { failures.record(error) }
            #expect(throws: BatchNormKitError.rankFailed(rank: 2, reason: "bad data")) { try groups[rank].barrier() }
        }
        #expect(failures.count == 2)
        #expect(failures.first as? BatchNormKitError == .rankFailed(rank: 2, reason: "bad data"))
        #expect(ContinuousClock.now - start < .seconds(5))
    }

    @Test("with a timeout, a rank that never arrives fails the collective on the ranks that did")
    func timeout() throws {
        let groups = try ThreadProcessGroup.make(size: 2, timeoutSeconds: 0.2)
        let start = ContinuousClock.now
        var thrown: Error?
        do { try groups[0].barrier() } catch { thrown = error }
        guard case .rankFailed(rank: nil, _)? = thrown as? BatchNormKitError else {
            Issue.record("expected rankFailed(rank: nil), got \(String(describing: thrown))")
            return
        }
        #expect(ContinuousClock.now - start < .seconds(3))
        #expect(throws: BatchNormKitError.self) { try ThreadProcessGroup.make(size: 2, timeoutSeconds: 0) }
    }

    @Test("broadcast copies the root's bits; agree(on:) accepts equal settings and names the setting and rank that differ")
    func broadcastAndAgreement() throws {
        let groups = try ThreadProcessGroup.make(size: 3)
        let failures = ErrorBox()
        try onRanks(3) { rank in
            var values = [Double](repeating: Double(rank) + 0.1, count: 4)
            try values.withUnsafeMutableBufferPointer { try groups[rank].broadcast($0, from: 1) }
            #expect(values == [1.1, 1.1, 1.1, 1.1])
            try groups[rank].agree(on: [("--seed", "0"), ("model", "784 → 256")])
            do {
                try groups[rank].agree(on: [("--seed", rank == 2 ? "1" : "0"), ("model", "784 → 256")])
            } catch { failures.record(error) }
        }
        #expect(failures.count == 3)
        let messages = ["\(failures.first!)"]
        #expect(messages[0].contains("--seed differs on rank 2 from rank 0"), "\(messages)")
        #expect(!messages[0].contains("model"))
    }
}
