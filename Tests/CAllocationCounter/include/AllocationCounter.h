#ifndef ALLOCATION_COUNTER_H
#define ALLOCATION_COUNTER_H

// Test-only heap-allocation counter. This target defines malloc, calloc, realloc, reallocarray, memalign,
// aligned_alloc, posix_memalign, valloc and pvalloc, forwarding to glibc's __libc_* entry points. Linked into the
// test executable, these definitions take precedence over libc's for every caller in the process (the Swift
// runtime, Foundation, Dispatch, OpenBLAS, ...): the executable comes first in the dynamic linker's symbol
// search order, and the static linker puts malloc & co. into its dynamic symbol table because the shared
// libraries it links against reference them. Never link this target into a product.
//
// While enabled (between begin and end), every allocation call on ANY thread is counted, including
// realloc (it may move the block) and zero-size requests. free is not interposed (glibc's frees blocks from
// __libc_malloc). Not reentrant across windows: one window at a time.
//
// With the environment variable ALLOCATION_COUNTER_BACKTRACE set (to anything non-empty), each counted
// allocation also writes its size and a raw backtrace (glibc backtrace_symbols_fd: "binary(symbol+off) [addr]"
// or "binary(+offset) [addr]") to stderr; symbolize offsets of the test binary with
// `addr2line -f -C -e .build/debug/SelectiveLoRAPackageTests.xctest <offset> | swift demangle`.

#ifdef __cplusplus
extern "C" {
#endif

/// Starts counting (resets the counts to 0).
void allocation_counter_begin(void);
/// Stops counting; returns the number of allocation calls (all threads) since the matching begin.
long allocation_counter_end(void);
/// Of the calls counted by the last begin/end window, how many were made by threads other than the one
/// that called begin.
long allocation_counter_other_threads(void);
/// Whether this process's malloc is really the counter's: the dynamic linker resolves "malloc" to it, and
/// an allocation made inside libc (strdup) reaches it.
/// False means the interposition did not take effect and the counts are meaningless.
int allocation_counter_is_interposed(void);

#ifdef __cplusplus
}
#endif

#endif
