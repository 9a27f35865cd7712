// See include/AllocationCounter.h.
#define _GNU_SOURCE
#include "AllocationCounter.h"

#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// glibc's real allocator (exported by libc.so.6 under these names since 2.2.5).
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);

static atomic_int enabled;
static atomic_long total;
static atomic_long other_threads;
static atomic_long probe_hits;
static pthread_t owner;
static int backtraces;
// Set while this thread is inside the counter's own code (backtrace() may allocate): not counted.
static __thread int inside;

static void record(size_t size) {
    if (!atomic_load_explicit(&enabled, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&probe_hits, 1, memory_order_relaxed);
        return;
    }
    if (inside) return;
    atomic_fetch_add_explicit(&total, 1, memory_order_relaxed);
    if (!pthread_equal(pthread_self(), owner)) atomic_fetch_add_explicit(&other_threads, 1, memory_order_relaxed);
    if (backtraces) {
        inside = 1;
        char line[64];
        int n = snprintf(line, sizeof line, "--- allocation of %zu bytes\n", size);
        if (n > 0) (void)!write(2, line, (size_t)n);
        void *frames[48];
        int depth = backtrace(frames, 48);
        backtrace_symbols_fd(frames, depth, 2);
        inside = 0;
    }
}

void *malloc(size_t size) {
    record(size);
    return __libc_malloc(size);
}

void *calloc(size_t count, size_t size) {
    record(count * size);
    return __libc_calloc(count, size);
}

void *realloc(void *p, size_t size) {
    record(size);
    return __libc_realloc(p, size);
}

void *reallocarray(void *p, size_t count, size_t size) {
    size_t bytes;
    if (__builtin_mul_overflow(count, size, &bytes)) {
        errno = ENOMEM;
        return NULL;
    }
    record(bytes);
    return __libc_realloc(p, bytes);
}

void *memalign(size_t alignment, size_t size) {
    record(size);
    return __libc_memalign(alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size) {
    record(size);
    return __libc_memalign(alignment, size);
}

int posix_memalign(void **out, size_t alignment, size_t size) {
    if (alignment % sizeof(void *) != 0 || (alignment & (alignment - 1)) != 0) return EINVAL;
    record(size);
    void *p = __libc_memalign(alignment, size);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}

void *valloc(size_t size) {
    record(size);
    return __libc_valloc(size);
}

void *pvalloc(size_t size) {
    record(size);
    return __libc_pvalloc(size);
}

void allocation_counter_begin(void) {
    const char *env = getenv("ALLOCATION_COUNTER_BACKTRACE");
    backtraces = env && *env;
    if (backtraces) {
        // backtrace() loads libgcc_s (allocating) on first use: do that before counting.
        void *frame[2];
        inside = 1;
        (void)backtrace(frame, 2);
        inside = 0;
    }
    owner = pthread_self();
    atomic_store(&total, 0);
    atomic_store(&other_threads, 0);
    atomic_store(&enabled, 1);
}

long allocation_counter_end(void) {
    atomic_store(&enabled, 0);
    return atomic_load(&total);
}

long allocation_counter_other_threads(void) { return atomic_load(&other_threads); }

int allocation_counter_is_interposed(void) {
    // The dynamic linker's global lookup (what the Swift runtime's and every library's PLT entries bind to)
    // must find this file's malloc, not libc's; and a libc-internal allocation (strdup) must reach it.
    if (dlsym(RTLD_DEFAULT, "malloc") != (void *)malloc) return 0;
    long before = atomic_load(&probe_hits);
    // Through a volatile pointer: the optimizer removes a strdup whose block is freed unused.
    char *(*volatile duplicate)(const char *) = strdup;
    free(duplicate("probe"));
    return atomic_load(&probe_hits) > before;
}
