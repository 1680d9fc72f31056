// C shim over zlib for reading gzip-compressed IDX files (MNIST-style data).
#ifndef C_BATCHNORMKIT_ZLIB_H
#define C_BATCHNORMKIT_ZLIB_H
#include <zlib.h>
#endif
