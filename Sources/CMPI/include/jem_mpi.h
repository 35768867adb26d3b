// jem_mpi.h: the few MPI calls robust-eval makes, behind plain C functions (Open MPI's handles
// are macros Swift cannot import). Every function returns 0 on success or an MPI error code.
#ifndef JEM_MPI_H
#define JEM_MPI_H
#include <stddef.h>
#include <stdint.h>

/// 1 when this process was started by an MPI launcher (mpirun, srun with PMI/PMIx).
int jem_mpi_launched(void);
/// MPI_Init with errors returned (not fatal); rank and size of MPI_COMM_WORLD, and the number of
/// ranks on this node (for the default thread count).
int jem_mpi_init(int *rank, int *size, int *local_size);
int jem_mpi_finalize(void);
/// Ends every rank of the job with `code`.
void jem_mpi_abort(int code);
/// Gathers `len` bytes from every rank at rank 0. At rank 0, *out receives a malloc'd buffer of
/// all parts in rank order and lens[r] (size entries, caller-allocated) each part's length.
int jem_mpi_gather_bytes(const void *buf, int64_t len, void **out, int64_t *lens);
/// In-place sum over ranks.
int jem_mpi_allreduce_sum_float(float *buf, int64_t n);
int jem_mpi_allreduce_sum_double(double *buf, int64_t n);
/// Every rank's `count` floats into recv (rank r's at displs[r], counts[r] of them), on every rank.
int jem_mpi_allgatherv_float(const float *send, int count, float *recv, const int *counts, const int *displs);
/// The text of an MPI error code.
void jem_mpi_error_string(int code, char *out, int cap);
#endif
