import CAllocationCounter

/// Heap allocations (calls to malloc, calloc, realloc, memalign & co., on every thread of the process) made while
/// `body` runs. Set `ALLOCATION_COUNTER_BACKTRACE=1` to get a backtrace of each one on stderr.
func allocations(_ body: () throws -> Void) rethrows -> Int {
    allocation_counter_begin()
    do { try body() } catch {
        _ = allocation_counter_end()
        throw error
    }
    return allocation_counter_end()
}
