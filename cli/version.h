#ifndef SL_VERSION_H
#define SL_VERSION_H
#define SEQLENS_VERSION "0.2.0"
#endif
