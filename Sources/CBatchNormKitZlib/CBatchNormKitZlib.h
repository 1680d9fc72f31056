// C shim over zlib for reading gzip-compressed IDX files (MNIST-style data).
#ifndef C_BATCHNORMKIT_ZLIB_H
#define C_BATCHNORMKIT_ZLIB_H
#include <zlib.h>
#include <limits.h>
#include <stddef.h>

// gzread takes `unsigned` and returns `int`; this clamps a size_t request to
// what one call can report (< INT_MAX), so Swift passes Int sizes unchecked.
// Returns bytes read, 0 at end of stream, -1 on error (see bnk_gzerror_text).
static inline long bnk_gzread(gzFile file, void *buffer, size_t length) {
    unsigned chunk = length > (size_t)(1u << 30) ? (1u << 30) : (unsigned)length;
    return (long)gzread(file, buffer, chunk);
}

// Same size_t→unsigned clamping as bnk_gzread, for the writer; returns bytes
// written (0 on error — zlib's convention for gzwrite).
static inline long bnk_gzwrite(gzFile file, const void *buffer, size_t length) {
    unsigned chunk = length > (size_t)(1u << 30) ? (1u << 30) : (unsigned)length;
    return (long)gzwrite(file, buffer, chunk);
}

// gzerror reports its code through an out-parameter, which imports as an
// UnsafeMutablePointer<Int32>; this returns it by value (Z_OK when none).
static inline int bnk_gzerror_code(gzFile file) {
    int code = Z_OK;
    (void)gzerror(file, &code);
    return code;
}

// gzerror returns "" when there is no error; NULL imports as nil in Swift,
// which keeps "no message" distinct from an empty one.
static inline const char *bnk_gzerror_text(gzFile file) {
    int code = Z_OK;
    const char *text = gzerror(file, &code);
    return code == Z_OK ? NULL : text;
}

#endif
