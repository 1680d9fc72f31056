// Coverage-guided fuzzing of BatchNormKit's file parsers under libFuzzer
// (`make fuzz`). One entry point, three parsers; BNK_FUZZ_TARGET picks which:
//
//   idx          IDXFile(contentsOf:) on the bytes (raw or gzip)
//   safetensors  SafeTensorsFile(bytes:path:) and every tensor's typed accessor
//   checkpoint   safetensors, then SeedNetwork(stateDict:) — `bnkit eval`'s path
//
// A crash, a sanitizer report or a leak is a finding; a thrown
// BatchNormKitError is the expected answer to bad input. Any other error type
// is a finding too (the parsers promise typed errors). Without -DFUZZING the
// target builds a reproducer instead: `bnkfuzz TARGET FILE…` runs files once.

import BatchNormKit
import Foundation

enum FuzzTarget: String, CaseIterable {
    case idx, safetensors, checkpoint

    /// Runs one input; traps on anything but success or a BatchNormKitError,
    /// which it returns (nil: the input was accepted).
    @discardableResult
    func run(_ bytes: [UInt8]) -> BatchNormKitError? {
        do {
            switch self {
            case .idx:
                try IDXFile.fuzzScratch.write(bytes)
                let file = try IDXFile(contentsOf: IDXFile.fuzzScratch.path)
                precondition(file.bytes.count == file.dimensions.reduce(1, *), "IDX payload and header disagree")
            case .safetensors:
                let file = try SafeTensorsFile(bytes: bytes, path: "input")
                for tensor in file.tensors.values {
                    switch tensor.dtype {
                    case .f32: _ = try tensor.floats
                    case .f64: _ = try tensor.doubles
                    case .i64: _ = try tensor.int64s
                    case .i32: _ = try tensor.int32s
                    default: break
                    }
                }
            case .checkpoint:
                let file = try SafeTensorsFile(bytes: bytes, path: "input")
                _ = try SeedNetwork(stateDict: file, path: "input")
            }
            return nil
        } catch let error as BatchNormKitError {
            return error   // the answer bad input deserves
        } catch {
            fatalError("\(self): not a BatchNormKitError: \(type(of: error)) \(error)")
        }
    }
}

/// A per-process scratch file for the IDX parser, which reads paths (through zlib).
struct ScratchFile {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("bnkfuzz-\(getpid()).idx").path
    func write(_ bytes: [UInt8]) throws {
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
            throw BatchNormKitError.fileUnreadable(path: path, reason: "cannot write the fuzz scratch file")
        }
    }
}

extension IDXFile {
    static let fuzzScratch = ScratchFile()
}

let selectedTarget: FuzzTarget = {
    let name = ProcessInfo.processInfo.environment["BNK_FUZZ_TARGET"] ?? "safetensors"
    guard let target = FuzzTarget(rawValue: name) else {
        fatalError("BNK_FUZZ_TARGET=\(name): expected one of \(FuzzTarget.allCases.map(\.rawValue))")
    }
    return target
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    selectedTarget.run(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

#if !FUZZING
/// Reproducer: `bnkfuzz TARGET FILE…` runs each file through TARGET once.
@main
enum Reproduce {
    static func main() throws {
        let arguments = CommandLine.arguments.dropFirst()
        guard let name = arguments.first, let target = FuzzTarget(rawValue: name) else {
            print("usage: bnkfuzz idx|safetensors|checkpoint FILE…  (make fuzz builds the libFuzzer binary)")
            exit(2)
        }
        for path in arguments.dropFirst() {
            let error = target.run([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))))
            print("\(path): " + (error.map { "rejected: \($0)" } ?? "accepted"))
        }
    }
}
#endif
