// mpi_shim.c: see jem_mpi.h. Errors are returned, never fatal (MPI_ERRORS_RETURN), so the
// caller can print one clear line naming the rank before aborting the job.
#include "jem_mpi.h"
#include <mpi.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

int jem_mpi_launched(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK") ? 1 : 0;
}

int jem_mpi_init(int *rank, int *size, int *local_size) {
    int rc = MPI_Init(NULL, NULL);
    if (rc != MPI_SUCCESS) return rc;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    if ((rc = MPI_Comm_rank(MPI_COMM_WORLD, rank)) != MPI_SUCCESS) return rc;
    if ((rc = MPI_Comm_size(MPI_COMM_WORLD, size)) != MPI_SUCCESS) return rc;
    MPI_Comm node;
    if ((rc = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node)) != MPI_SUCCESS) return rc;
    rc = MPI_Comm_size(node, local_size);
    MPI_Comm_free(&node);
    return rc;
}

int jem_mpi_finalize(void) { return MPI_Finalize(); }

void jem_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

// Messages larger than INT_MAX bytes go as chunks of MPI_BYTE counts that fit an int.
#define CHUNK ((int64_t)1 << 30)

int jem_mpi_gather_bytes(const void *buf, int64_t len, void **out, int64_t *lens) {
    int rank, size, rc;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if ((rc = MPI_Gather(&len, 1, MPI_INT64_T, lens, 1, MPI_INT64_T, 0, MPI_COMM_WORLD)) != MPI_SUCCESS) return rc;
    if (rank != 0) {
        for (int64_t off = 0; off < len; off += CHUNK) {
            int n = (int)(len - off < CHUNK ? len - off : CHUNK);
            if ((rc = MPI_Send((const char *)buf + off, n, MPI_BYTE, 0, 7, MPI_COMM_WORLD)) != MPI_SUCCESS) return rc;
        }
        return MPI_SUCCESS;
    }
    int64_t total = 0;
    for (int r = 0; r < size; r++) total += lens[r];
    char *all = malloc(total > 0 ? (size_t)total : 1);
    if (!all) return MPI_ERR_NO_MEM;
    memcpy(all, buf, (size_t)len);
    int64_t at = lens[0];
    for (int r = 1; r < size; r++) {
        for (int64_t off = 0; off < lens[r]; off += CHUNK) {
            int n = (int)(lens[r] - off < CHUNK ? lens[r] - off : CHUNK);
            if ((rc = MPI_Recv(all + at + off, n, MPI_BYTE, r, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE)) != MPI_SUCCESS) { free(all); return rc; }
        }
        at += lens[r];
    }
    *out = all;
    return MPI_SUCCESS;
}

// In-place sums in int-sized pieces (MPI counts are ints).
static int allreduce_sum(void *buf, int64_t n, MPI_Datatype type, int size) {
    int rc = MPI_SUCCESS;
    const int64_t piece = CHUNK / size;
    for (int64_t off = 0; off < n && rc == MPI_SUCCESS; off += piece) {
        int k = (int)(n - off < piece ? n - off : piece);
        rc = MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off * size, k, type, MPI_SUM, MPI_COMM_WORLD);
    }
    return rc;
}

int jem_mpi_allreduce_sum_float(float *buf, int64_t n) { return allreduce_sum(buf, n, MPI_FLOAT, 4); }
int jem_mpi_allreduce_sum_double(double *buf, int64_t n) { return allreduce_sum(buf, n, MPI_DOUBLE, 8); }

void jem_mpi_error_string(int code, char *out, int cap) {
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(code, s, &len) != MPI_SUCCESS) { snprintf(out, (size_t)cap, "MPI error %d", code); return; }
    snprintf(out, (size_t)cap, "%s", s);
}

int jem_mpi_allgatherv_float(const float *send, int count, float *recv, const int *counts, const int *displs) {
    return MPI_Allgatherv(send, count, MPI_FLOAT, recv, counts, displs, MPI_FLOAT, MPI_COMM_WORLD);
}
