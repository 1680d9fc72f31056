#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A mutex and the condition variables waited on under it, numbered
/// `0..<conditions`: the package's one wrapper of pthread's mutex and
/// conditions, under the kernels' worker pool (`_KernelThreading`) and
/// ThreadProcessGroup's rendezvous. They live on the heap, allocated once and
/// never moved: a pthread object in a stored property may reach C as a
/// temporary copy (`&storedProperty`), and a copied mutex excludes nothing.
///
/// A plain monitor, nothing more: the callers keep their own predicates and
/// re-check them in a loop around ``wait(_:)`` (a waiter may wake without a
/// signal).
package final class _Monitor: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let conditions: UnsafeMutablePointer<pthread_cond_t>
    private let count: Int

    /// An unlocked mutex with `count` conditions (0: a bare mutex).
    package init(conditions count: Int = 1) {
        self.count = count
        conditions = .allocate(capacity: count)
        mutex.initialize(to: pthread_mutex_t()); pthread_mutex_init(mutex, nil)
        for c in 0..<count { (conditions + c).initialize(to: pthread_cond_t()); pthread_cond_init(conditions + c, nil) }
    }

    deinit {
        for c in 0..<count { pthread_cond_destroy(conditions + c) }
        pthread_mutex_destroy(mutex)
        conditions.deallocate(); mutex.deallocate()
    }

    package func lock() { pthread_mutex_lock(mutex) }
    package func unlock() { pthread_mutex_unlock(mutex) }

    /// `body()` with the mutex held.
    package func withLock<R>(_ body: () throws -> R) rethrows -> R {
        lock(); defer { unlock() }; return try body()
    }

    /// Sleeps on `condition` until it is signalled, releasing the mutex
    /// meanwhile; held on entry and again on return.
    package func wait(_ condition: Int = 0) { pthread_cond_wait(self[condition], mutex) }

    /// ``wait(_:)`` until at the latest `deadline` (`CLOCK_REALTIME`, as
    /// `pthread_cond_timedwait` takes it); true when it timed out.
    package func wait(_ condition: Int = 0, until deadline: timespec) -> Bool {
        withUnsafePointer(to: deadline) { pthread_cond_timedwait(self[condition], mutex, $0) == ETIMEDOUT }
    }

    /// Wakes one thread waiting on `condition`.
    package func signal(_ condition: Int = 0) { pthread_cond_signal(self[condition]) }
    /// Wakes every thread waiting on `condition`.
    package func broadcast(_ condition: Int = 0) { pthread_cond_broadcast(self[condition]) }

    private subscript(condition: Int) -> UnsafeMutablePointer<pthread_cond_t> {
        assert(condition >= 0 && condition < count, "_Monitor has no condition \(condition)")
        return conditions + condition
    }
}
