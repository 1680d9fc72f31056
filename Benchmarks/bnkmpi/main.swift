// bnkmpi: the rank program of the MPI tests and the MPI benchmark.
//
//   mpirun -np N bnkmpi check collectives|syncbn|train|fail-throw|fail-kill|mismatch
//   mpirun -np N bnkmpi bench [--steps S] [--batch B]      (MPI ranks)
//   bnkmpi bench --thread-ranks R [--steps S] [--batch B]  (ranks on threads of one process)
//
// A check prints "ok <case> rank r of n" on every rank that passed and exits
// 0; a failed expectation ends the job (MPIProcessGroup.abort) with status 1.
// The tests in Tests/BatchNormKitMPITests launch it under mpirun.
import BatchNormKit
import BatchNormKitMPI
#if canImport(Glibc)
import Glibc
#endif

let arguments = Array(CommandLine.arguments.dropFirst())
func option(_ name: String, default value: Int) -> Int {
    guard let i = arguments.firstIndex(of: name), i + 1 < arguments.count, let v = Int(arguments[i + 1]) else { return value }
    return v
}

setvbuf(stdout, nil, _IOLBF, 0)
// one OpenBLAS thread per rank, as `bnkit train --threads 1` (its default): with
// OpenBLAS's own default (a thread per core) every rank would fight for every core
do { try setThreadCount(1) } catch { fputs("bnkmpi: \(error)\n", stderr); exit(2) }
switch (arguments.first, arguments.dropFirst().first) {
case ("check", let name?):
    let group: MPIProcessGroup
    do { group = try MPIProcessGroup.world() } catch { fputs("bnkmpi: \(error)\n", stderr); exit(2) }
    group.timeoutSeconds = 60
    do {
        try runCheck(name, group)
        print("ok \(name) rank \(group.rank) of \(group.size)")
    } catch {
        if group.rank == 0 { fputs("bnkmpi: check \(name) failed: \(error)\n", stderr) }
        group.abort(reason: "\(error)")
    }
case ("bench", _):
    let steps = option("--steps", default: 60), batch = option("--batch", default: 128)
    let threadRanks = option("--thread-ranks", default: 0)
    do {
        if threadRanks > 0 {
            try benchThreadRanks(threadRanks, steps: steps, batch: batch)
        } else {
            let group = try MPIProcessGroup.world()
            do { try benchMPI(group, steps: steps, batch: batch) } catch { group.abort(reason: "\(error)") }
        }
    } catch { fputs("bnkmpi: \(error)\n", stderr); exit(1) }
default:
    fputs("usage: bnkmpi check collectives|syncbn|train|fail-throw|fail-kill|mismatch | bench [--steps S] [--batch B] [--thread-ranks R]\n", stderr)
    exit(64)
}
