// The part of Open MPI's C API that BatchNormKitMPI uses, importable by Swift.
//
// mpi.h itself imports (functions, MPI_Status, integer constants such as
// MPI_ANY_SOURCE), but Open MPI's predefined handles are macros that take
// the address of a library global and cast it, e.g.
//   #define MPI_COMM_WORLD OMPI_PREDEFINED_GLOBAL(MPI_Comm, ompi_mpi_comm_world)
// Swift imports no macro with a cast, so each handle the Swift side needs
// gets a static inline function here returning that macro's value.
#ifndef CBATCHNORMKIT_MPI_H
#define CBATCHNORMKIT_MPI_H

#include <mpi.h>

// All processes of the job: what MPIProcessGroup duplicates its communicators from.
static inline MPI_Comm bnk_mpi_comm_world(void) { return MPI_COMM_WORLD; }
// The "no communicator" value, to tell a freed handle from a live one.
static inline MPI_Comm bnk_mpi_comm_null(void) { return MPI_COMM_NULL; }
// Element type of every all-reduce and broadcast (ProcessGroup sums Doubles).
static inline MPI_Datatype bnk_mpi_double(void) { return MPI_DOUBLE; }
// Element type of the fault reports (UTF-8 text).
static inline MPI_Datatype bnk_mpi_byte(void) { return MPI_BYTE; }
// The all-reduce's reduction.
static inline MPI_Op bnk_mpi_sum(void) { return MPI_SUM; }
// For the count check before an all-reduce: max of (count, −count) gives max and −min.
static inline MPI_Op bnk_mpi_max(void) { return MPI_MAX; }
// "The result overwrites this buffer": the in-place all-reduce (no second copy of the gradients).
static inline void *bnk_mpi_in_place(void) { return MPI_IN_PLACE; }
// A completed or never-started request, as MPI_Test leaves it.
static inline MPI_Request bnk_mpi_request_null(void) { return MPI_REQUEST_NULL; }
// Makes errors return codes instead of aborting the job, so Swift can throw them.
static inline MPI_Errhandler bnk_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }

#endif
