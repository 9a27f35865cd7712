#ifndef COPENBLAS_SHIM_H
#define COPENBLAS_SHIM_H
#include <cblas.h>
// Declared in OpenBLAS's cblas.h; repeated here for clarity of what we use:
//   openblas_get_corename(), openblas_get_num_threads(), openblas_set_num_threads(), openblas_get_config()
#endif
