/* The end of a kernel template for one width (core/simd_width.h): its
 * macros undefined, ready for the next width. */
#undef SL_V
#undef SL_VW
#undef SL_VLOAD
#undef SL_VSTORE
#undef SL_VSET1
#undef SL_VMAX
#undef SL_VN
