#ifndef CTURBOJPEG_SHIM_H
#define CTURBOJPEG_SHIM_H
/* libjpeg-turbo's TurboJPEG API (Debian libturbojpeg0-dev, 2.1.5 on Debian 12). */
#include <turbojpeg.h>
#endif
