// Extra measurements behind the README's notes, each its own flag:
//   --probe-threads  streaming bandwidth with 1 and 2 threads (kernel threading decision)
//   --probe-copy     y = a·x + b stored directly vs. computed into an L1 chunk and
//                    memcpy'd (does glibc's memcpy spare the read-for-ownership?)
// and the single-core FMA peak printed in every run's header.

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

// MARK: - FMA peak

/// Single-core peak of vector multiply-adds, GFLOP/s (2 flops per lane), from
/// 12 independent chains of 8 lanes and of 16 lanes, the faster of the two
/// with its width — what sgemm could reach at most. Both widths, because the
/// machine decides which is faster: Zen 4 runs a 16-lane FMA as two 8-lane
/// halves (same peak), Zen 5 has full 16-lane FMA units (twice the peak,
/// which an AVX2 sgemm kernel cannot use).
func fmaPeak() -> (gflops: Double, lanes: Int) {
    let eight = fmaPeak(SIMD8<Float>.self), sixteen = fmaPeak(SIMD16<Float>.self)
    return sixteen > eight ? (sixteen, 16) : (eight, 8)
}

@inline(__always)
private func fmaPeak<V: SIMD>(_: V.Type) -> Double where V.Scalar == Float {
    @inline(__always) func fma(_ a: V, _ b: V, _ c: V) -> V {
        #if BATCHNORMKIT_FMA
        return c.addingProduct(a, b)
        #else
        return a * b + c
        #endif
    }
    let iterations = 200_000
    var best = 0.0
    for _ in 0..<5 {
        var acc = (0..<12).map { V(repeating: Float($0) * 1e-3) }
        let m = V(repeating: 0.999999), k = V(repeating: 1e-7)
        let t0 = now()
        acc.withUnsafeMutableBufferPointer { p in
            var a0 = p[0], a1 = p[1], a2 = p[2], a3 = p[3], a4 = p[4], a5 = p[5]
            var a6 = p[6], a7 = p[7], a8 = p[8], a9 = p[9], a10 = p[10], a11 = p[11]
            for _ in 0..<iterations {
                a0 = fma(a0, m, k); a1 = fma(a1, m, k); a2 = fma(a2, m, k); a3 = fma(a3, m, k)
                a4 = fma(a4, m, k); a5 = fma(a5, m, k); a6 = fma(a6, m, k); a7 = fma(a7, m, k)
                a8 = fma(a8, m, k); a9 = fma(a9, m, k); a10 = fma(a10, m, k); a11 = fma(a11, m, k)
            }
            p[0] = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11
        }
        let t = now() - t0
        blackHole(acc[0].sum())
        best = max(best, Double(iterations * 12 * V.scalarCount * 2) / t / 1e9)
    }
    return best
}

// MARK: - Threads

private struct ProbeJob {
    var src: UnsafeMutablePointer<Float>
    var dst: UnsafeMutablePointer<Float>
    var count: Int
    var reps: Int
    var kind: Int
}

private func probeWork(_ job: ProbeJob) {
    for _ in 0..<job.reps {
        if job.kind == 0 { blackHole(_streamRead(job.src, job.count)) } else { _streamScale(job.src, job.dst, job.count) }
    }
}

func probeThreads() {
    print("thread probe: GB/s moved (reads + writes), median of 8; with 2 threads each streams its own half")
    for mb in [1, 4, 16, 32, 64] {
        for kind in [0, 1] {
            var line = "  \(kind == 0 ? "read      " : "read+write") ws \(lpad("\(mb)", 3)) MB:"
            for threads in [1, 2] {
                let total = mb << 18   // floats
                let per = total / (kind == 0 ? 1 : 2) / threads & ~31
                var jobs: [ProbeJob] = []
                var buffers: [FloatBuffer] = []
                for _ in 0..<threads {
                    let a = FloatBuffer(count: per, fill: 1), b = FloatBuffer(count: per)
                    buffers += [a, b]
                    jobs.append(ProbeJob(src: a.pointer, dst: b.pointer, count: per, reps: max(1, 64 / mb), kind: kind))
                }
                var times: [Double] = []
                for _ in 0..<8 {
                    let t0 = now()
                    if threads == 1 { probeWork(jobs[0]) } else {
                        var tid = pthread_t()
                        let box = UnsafeMutablePointer<ProbeJob>.allocate(capacity: 1)
                        box.initialize(to: jobs[1])
                        pthread_create(&tid, nil, { p in
                            probeWork(p!.assumingMemoryBound(to: ProbeJob.self).pointee); return nil
                        }, box)
                        probeWork(jobs[0])
                        pthread_join(tid, nil)
                        box.deallocate()
                    }
                    times.append(now() - t0)
                }
                times.sort()
                let bytes = Double(per * 4 * (kind == 0 ? 1 : 2) * threads * jobs[0].reps)
                line += "  \(threads)T \(lpad(fixed(bytes / times[4] / 1e9, 1), 6))"
                withExtendedLifetime(buffers) {}
            }
            print(line)
        }
    }
}

// MARK: - memcpy instead of non-temporal stores

@inline(never)
func _streamScaleChunked(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int,
                         _ tmp: UnsafeMutablePointer<Float>, _ chunk: Int) {
    let a = SIMD8<Float>(repeating: 1.0001), b = SIMD8<Float>(repeating: 0.5)
    var start = 0
    while start < n {
        let end = min(n, start + chunk)
        var i = start
        while i + 8 <= end {
            let v = UnsafeRawPointer(x + i).load(as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(tmp + (i - start)).storeBytes(of: v * a + b, as: SIMD8<Float>.self)
            i += 8
        }
        UnsafeMutableRawPointer(y + start).copyMemory(from: tmp, byteCount: (end - start) * 4)
        start = end
    }
}

func probeCopy() {
    print("copy probe: y = a·x + b, GB/s moved (reads + writes), median of 9; direct stores vs. computing")
    print("each chunk into an L1 buffer and memcpy'ing it out (glibc picks rep movsb / vector stores by size)")
    for mb in [2, 8, 16, 32, 64] {
        let per = (mb << 18) / 2
        let a = FloatBuffer(count: per, fill: 1), b = FloatBuffer(count: per), tmp = FloatBuffer(count: 1 << 16)
        var line = "  ws \(lpad("\(mb)", 2)) MB:"
        for chunk in [0, 1024, 4096, 16384, 65536] {
            var times: [Double] = []
            for _ in 0..<9 {
                let t0 = now()
                if chunk == 0 { _streamScale(a.pointer, b.pointer, per) } else {
                    _streamScaleChunked(a.pointer, b.pointer, per, tmp.pointer, chunk)
                }
                times.append(now() - t0)
            }
            times.sort()
            line += "  \(chunk == 0 ? "direct" : "chunk \(chunk * 4 / 1024)KB") \(lpad(fixed(Double(per * 8) / times[4] / 1e9, 1), 5))"
        }
        print(line)
    }
}
