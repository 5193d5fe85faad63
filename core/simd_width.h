/* The vector of one width for a kernel template (models/attention_lanes.h,
 * models/mamba2_ssd_lanes.h), included at the top of such a template once
 * per width (so no include guard): from SL_VW (8 or 16 float lanes), SL_V
 * is the vector type, SL_VLOAD, SL_VSTORE, SL_VSET1 and SL_VMAX its helpers
 * (core/simd.h) and SL_VN(name) names a kernel for this width.
 * core/simd_width_end.h undefines all seven at the template's end, ready for
 * the next width. */
#if SL_VW == 8
#define SL_V v8f
#define SL_VLOAD v8_load
#define SL_VSTORE v8_store
#define SL_VSET1 v8_set1
#define SL_VMAX v8_max
#define SL_VN(name) name##_v8
#elif SL_VW == 16
#define SL_V v16f
#define SL_VLOAD v16_load
#define SL_VSTORE v16_store
#define SL_VSET1 v16_set1
#define SL_VMAX v16_max
#define SL_VN(name) name##_v16
#else
#error "SL_VW must be 8 or 16"
#endif
