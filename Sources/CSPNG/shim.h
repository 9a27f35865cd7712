#ifndef CSPNG_SHIM_H
#define CSPNG_SHIM_H
/* libspng (Debian libspng-dev, 0.7.3 on Debian 12). */
#include <spng.h>
#endif
