import Testing
import Foundation
@testable import BatchNormKit

// Adam, AdamW and the learning-rate schedules against PyTorch
// (Scripts/make_optimizer_fixtures.py). Both sides run the same Float32
// operations in the same order, but PyTorch's scalars (β, 1 − β, the bias
// corrections) are Python doubles rounded at other points, so after six
// steps parameters of O(1) agree to a few Float32 ulps: rtol 1e-5 + atol 1e-6.
// The schedules are Double on both sides (closed forms here, PyTorch's
// recursive updates there): rtol 1e-12.

@Suite("Optimizers and schedules against PyTorch")
struct OptimizerGoldenTests {
    /// (variant, make the optimizer) — the settings of the fixture's metadata.
    static let variants: [(String, @Sendable ([Parameter]) throws -> any Optimizer)] = [
        ("adam", { try Adam(parameters: $0, learningRate: 0.01) }),
        ("adam_weight_decay", { try Adam(parameters: $0, learningRate: 0.01, weightDecay: 0.1) }),
        ("adam_amsgrad", { try Adam(parameters: $0, learningRate: 0.01, betas: (0.8, 0.99), amsgrad: true) }),
        ("adam_lr_changes", { try Adam(parameters: $0, learningRate: 0.01, eps: 1e-6) }),
        ("adamw", { try AdamW(parameters: $0, learningRate: 0.01) }),
        ("adamw_amsgrad", { try AdamW(parameters: $0, learningRate: 0.02, eps: 1e-6, weightDecay: 0.1, amsgrad: true) }),
    ]

    @Test("six steps on fixed gradients: every parameter after every step, and the final state", arguments: variants.map(\.0))
    func adamMatchesPyTorch(variant: String) throws {
        let f = try fixture("optimizers.safetensors")
        let make = try #require(Self.variants.first { $0.0 == variant }?.1)
        let parameters = try (0..<3).map { Parameter(try f.tensor("init.p\($0)")) }
        let names = (0..<3).map { "p\($0)" }
        let optimizer = try make(parameters)
        for t in 1...6 {
            if variant == "adam_lr_changes" { optimizer.learningRate = Float(0.01 * pow(0.5, Double(t - 1))) }
            optimizer.zeroGrad()
            for (i, p) in parameters.enumerated() {
                let g = try f.floats("grad\(t).p\(i)")
                p.grad.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: g, count: g.count) }
            }
            optimizer.step()
            for (i, p) in parameters.enumerated() {
                let key = "\(variant).step\(t).p\(i)"
                let r = expectClose(p.value.scalars, try f.floats(key), rtol: 1e-5, atol: 1e-6, key)
                #expect(r.ok, "\(r.message)")
            }
        }
        let state = optimizer.stateTensors(parameterNames: names)
        #expect(try state["step"]?.int64s == [6])
        let kinds = ["exp_avg", "exp_avg_sq"] + (variant.hasSuffix("amsgrad") ? ["max_exp_avg_sq"] : [])
        #expect(state.count == kinds.count * 3 + 1)
        for kind in kinds {
            for name in names {
                let stored = try #require(state["\(kind).\(name)"])
                let r = expectClose(try stored.floats, try f.floats("\(variant).state.\(kind).\(name)"), rtol: 1e-5, atol: 1e-9, kind)
                #expect(r.ok, "\(r.message)")
            }
        }
    }

    @Test("Adam's state round-trips: a restored optimizer continues bit for bit")
    func adamStateRoundTrip() throws {
        let f = try fixture("optimizers.safetensors")
        func run(restartAfter: Int?) throws -> [Float] {
            var parameters = try (0..<3).map { Parameter(try f.tensor("init.p\($0)")) }
            var optimizer: any Optimizer = try AdamW(parameters: parameters, learningRate: 0.02, amsgrad: true)
            for t in 1...6 {
                if t - 1 == restartAfter {
                    let values = parameters.map { $0.value.copy() }
                    let state = optimizer.stateTensors(parameterNames: ["a", "b", "c"])
                    parameters = values.map { Parameter($0) }
                    optimizer = try AdamW(parameters: parameters, learningRate: 0.02, amsgrad: true)
                    try optimizer.loadStateTensors(state, parameterNames: ["a", "b", "c"], path: "test")
                }
                for (i, p) in parameters.enumerated() {
                    let g = try f.floats("grad\(t).p\(i)")
                    p.grad.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: g, count: g.count) }
                }
                optimizer.step()
            }
            return parameters.flatMap(\.value.scalars)
        }
        #expect(try run(restartAfter: 3) == run(restartAfter: nil))
    }

    @Test("a state with a missing moment is refused, naming it")
    func adamStateMissingEntry() throws {
        let p = [Parameter(Tensor(_validShape: [2]))]
        let adam = try Adam(parameters: p)
        p[0].grad.fill(1)
        adam.step()
        var state = adam.stateTensors(parameterNames: ["w"])
        state["exp_avg_sq.w"] = nil
        let other = try Adam(parameters: p)
        #expect(throws: BatchNormKitError.self) { try other.loadStateTensors(state, parameterNames: ["w"], path: "x") }
        #expect(other.stepCount == 0)
    }

    @Test("bad hyperparameters throw")
    func adamRejectsBadArguments() {
        let p = [Parameter(Tensor(_validShape: [2]))]
        #expect(throws: BatchNormKitError.self) { try Adam(parameters: p, betas: (1, 0.999)) }
        #expect(throws: BatchNormKitError.self) { try AdamW(parameters: p, learningRate: -1) }
        #expect(throws: BatchNormKitError.self) { try Adam(parameters: p, eps: .nan) }
        #expect(throws: BatchNormKitError.self) { try StepLR(baseLearningRate: 0.1, stepSize: 0) }
        #expect(throws: BatchNormKitError.self) { try OneCycleLR(maxLearningRate: 0.1, totalSteps: 10, pctStart: 1) }
        #expect(throws: BatchNormKitError.self) {
            try SequentialLR(schedulers: [try LinearLR(baseLearningRate: 0.1)], milestones: [3])
        }
    }

    /// (variant, scheduler) — the settings of the fixture's metadata, base lr 0.1.
    static func scheduler(_ variant: String) throws -> any LearningRateScheduler {
        switch variant {
        case "step": return try StepLR(baseLearningRate: 0.1, stepSize: 3, gamma: 0.5)
        case "cosine": return try CosineAnnealingLR(baseLearningRate: 0.1, tMax: 10, etaMin: 0.001)
        case "linear": return try LinearLR(baseLearningRate: 0.1, startFactor: 0.1, endFactor: 1, totalIters: 4)
        case "onecycle": return try OneCycleLR(maxLearningRate: 0.1, totalSteps: 20, cycleMomentum: false)
        case "onecycle_custom":
            return try OneCycleLR(maxLearningRate: 0.1, totalSteps: 17, pctStart: 0.25, divFactor: 10, finalDivFactor: 100,
                                  cycleMomentum: false)
        case "onecycle_momentum": return try OneCycleLR(maxLearningRate: 0.1, totalSteps: 20)
        case "onecycle_beta1":
            return try OneCycleLR(maxLearningRate: 0.1, totalSteps: 15, pctStart: 0.4, baseMomentum: 0.8, maxMomentum: 0.9)
        case "warmup_cosine":
            return try SequentialLR(schedulers: [try LinearLR(baseLearningRate: 0.1, startFactor: 0.01, totalIters: 3),
                                                 try CosineAnnealingLR(baseLearningRate: 0.1, tMax: 7)], milestones: [3])
        case "warmup_step":
            return try SequentialLR(schedulers: [try LinearLR(baseLearningRate: 0.1, startFactor: 0.5, totalIters: 2),
                                                 try StepLR(baseLearningRate: 0.1, stepSize: 2, gamma: 0.1)], milestones: [2])
        default: throw BatchNormKitError.invalidArgument(name: "variant", value: variant, requirement: "known")
        }
    }

    @Test("every schedule gives PyTorch's lr at every step",
          arguments: ["step", "cosine", "linear", "onecycle", "onecycle_custom", "warmup_cosine", "warmup_step",
                      "onecycle_momentum", "onecycle_beta1"])
    func scheduleMatchesPyTorch(variant: String) throws {
        let f = try fixture("schedules.safetensors")
        let want = try #require(f.tensors["lr.\(variant)"]).doubles
        let scheduler = try Self.scheduler(variant)
        for (step, lr) in want.enumerated() {
            let got = scheduler.learningRate(at: step)
            #expect(abs(got - lr) <= 1e-12 * max(abs(lr), 1e-6), "\(variant) step \(step): \(got) vs PyTorch \(lr)")
        }
        // The momentum PyTorch's OneCycleLR sets (SGD's momentum, Adam's beta1); none for the others.
        if let momenta = try f.tensors["momentum.\(variant)"]?.doubles {
            #expect(momenta.count == want.count)
            for (step, momentum) in momenta.enumerated() {
                let got = try #require(scheduler.momentum(at: step), "\(variant) gives no momentum")
                #expect(abs(got - momentum) <= 1e-12, "\(variant) step \(step): momentum \(got) vs PyTorch \(momentum)")
            }
        } else {
            #expect(scheduler.momentum(at: 3) == nil, "\(variant) should leave the momentum alone")
        }
    }
}
