// runtime.c: thread configuration shared by every kernel. OpenMP parallelises over the batch;
// OpenBLAS runs single-threaded inside each OpenMP thread so the two never oversubscribe.
#include "jem_kernels.h"
#include <omp.h>
#include <malloc.h>

void openblas_set_num_threads(int);
void kmp_set_blocktime(int);

static int g_threads = 1;

void jem_runtime_init(int threads) {
    if (threads < 1) threads = omp_get_num_procs();
    static int malloc_tuned = 0;
    if (!malloc_tuned) {
        // Keep large activation buffers in the heap instead of fresh mmaps that fault in zero
        // pages on every SGLD step.
        mallopt(M_MMAP_THRESHOLD, 1 << 30);
        mallopt(M_TRIM_THRESHOLD, 1 << 30);
        malloc_tuned = 1;
    }
    g_threads = threads;
    omp_set_num_threads(threads);
    openblas_set_num_threads(1);
    // Idle OpenMP workers sleep at once instead of spinning for 200 ms (libomp's default),
    // so Swift-side work between kernels gets the cores.
    kmp_set_blocktime(0);
}

// A thread that runs its own share of a batch (BatchShares.swift) runs the kernels with its own
// thread count (1, or the threads left over when there are fewer rows than threads): its OpenMP
// regions and workspace sizes follow it, the process's other threads keep the configured count.
// A thread with its own count is inside a share and never splits again.
static _Thread_local int tl_threads = 0;

int jem_num_threads(void) { return tl_threads > 0 ? tl_threads : g_threads; }

int jem_thread_in_share(void) { return tl_threads > 0; }

void jem_set_thread_threads(int threads) {
    tl_threads = threads > 0 ? threads : 0;
    omp_set_num_threads(tl_threads > 0 ? tl_threads : g_threads);
}

static int batch_invariant = 0;
void jem_set_batch_invariant(int on) { batch_invariant = on != 0; }
int jem_batch_invariant(void) { return batch_invariant; }
