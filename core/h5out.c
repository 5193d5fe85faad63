#include "core/h5out.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/atomic.h"

/* HDF5's default chunk cache is 1 MiB: chunks near that size stay cheap to
 * write whole. */
#define CHUNK_BYTES (1u << 20)

/* Records a failure in o (the first one) and in err. errno was cleared
 * before the HDF5 call: when the system said why (a full disk), so does
 * the message. */
static int failed(sl_h5out *o, sl_error *err, const char *what, const char *name)
{
    int e = errno;
    char reason[160] = "";
    if (e) snprintf(reason, sizeof reason, ": %s", strerror(e));
    sl_fail(&o->fail, SL_ERUNTIME, "%s: %s%s%s", o->tmp, what, name ? name : "", reason);
    return sl_fail(err, SL_ERUNTIME, "%s", o->fail.msg);
}

/* HDF5 keeps rows and metadata in its caches and writes them when a
 * dataset or the file closes. Once a write has failed, such a close fails
 * too, and HDF5 1.10 then leaves a dangling id whose cleanup at exit
 * crashes. So after a failure the file's descriptor is pointed at an
 * anonymous memory file: the closes succeed and the bytes go nowhere (the
 * file is removed anyway). */
static void discard_writes(sl_h5out *o)
{
    void *handle = NULL;
    if (o->discarding || o->file < 0 || H5Fget_vfd_handle(o->file, H5P_DEFAULT, &handle) < 0 || !handle) return;
    int sink = memfd_create("seqlens-discarded", MFD_CLOEXEC);
    if (sink < 0) return;
    if (dup2(sink, *(int *)handle) >= 0) o->discarding = 1;
    close(sink);
}

/* HDF5 1.10 frees a file or dataset whose close failed but keeps its id,
 * and its exit handler (registered when the library started, so run after
 * this one) then crashes on it. discard_writes makes such a close rare (a
 * file-size limit, which a memory file obeys too, still fails it); once
 * one has failed, the process ends here, with its status and stdio
 * flushed, before that handler. */
static void end_before_hdf5(int status, void *unused)
{
    (void)unused;
    fflush(NULL);
    _exit(status);
}

static void close_failed(void)
{
    static int armed;
    if (!armed) on_exit(end_before_hdf5, NULL);
    armed = 1;
}

/* Read by LeakSanitizer in the sanitizer builds (make asan): HDF5 1.10
 * loses its metadata accumulator when H5Fcreate fails to write a new
 * file's first blocks (a full disk), a leak inside the library that no
 * caller can free. The library has no frame pointers, so such a leak's
 * stack ends in it and can only be named by it; allocations of ours are
 * still reported. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libhdf5\n"; }
/* ... without a table of them on stderr, where an error is one line */
const char *__lsan_default_options(void);
const char *__lsan_default_options(void) { return "print_suppressions=0"; }

int sl_h5out_create(sl_h5out *o, const char *path, sl_error *err)
{
    memset(o, 0, sizeof *o);
    o->file = -1;
    o->path = strdup(path);
    o->tmp = sl_tmp_name(path);
    if (!o->path || !o->tmp) return sl_fail(err, SL_ERUNTIME, "out of memory");
    /* a stale PATH.tmp or a symlink there is removed, not written through;
     * H5F_ACC_EXCL creates with O_EXCL */
    if (sl_clear_path(o->tmp)) return sl_fail(err, SL_ERUNTIME, "%s: cannot create: %s", o->tmp, strerror(errno));
    errno = 0;
    o->file = H5Fcreate(o->tmp, H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT);
    if (o->file < 0) return failed(o, err, "cannot create", NULL);
    return SL_OK;
}

/* IEEE half precision, which h5py reads as numpy float16. HDF5 1.10 has no
 * predefined type for it. */
static hid_t half_type(void)
{
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    if (t < 0) return -1;
    if (H5Tset_fields(t, 15, 10, 5, 0, 10) < 0 || H5Tset_precision(t, 16) < 0 || H5Tset_size(t, 2) < 0
        || H5Tset_ebias(t, 15) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

static uint16_t f32_to_half(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u, absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) return (uint16_t)(sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0));
    if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds past 65504 */
    if (absx < 0x38800000u) {                                   /* subnormal or zero: round to nearest even */
        float a;
        memcpy(&a, &absx, 4);
        float scaled = a * 16777216.0f; /* 2^24: units of the smallest subnormal */
        uint32_t q = (uint32_t)scaled;
        float rem = scaled - (float)q;
        if (rem > 0.5f || (rem == 0.5f && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t e = ((absx >> 23) - 112) << 10, man = absx & 0x7fffffu;
    uint32_t h = e | (man >> 13), rest = man & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

/* Link creation that makes missing groups ("families/names"). */
static hid_t link_props(void)
{
    hid_t lc = H5Pcreate(H5P_LINK_CREATE);
    if (lc >= 0 && H5Pset_create_intermediate_group(lc, 1) < 0) {
        H5Pclose(lc);
        return -1;
    }
    return lc;
}

int sl_h5out_dataset(sl_h5out *o, sl_h5set *s, const char *name, int type, int rank, const hsize_t *dims,
                     sl_error *err)
{
    memset(s, 0, sizeof *s);
    s->ds = -1;
    s->out = o;
    s->rank = rank;
    s->type = type;
    s->name = name;
    size_t esize = type == H5OUT_F16 ? 2 : 4, row = 1;
    hsize_t chunk[4];
    for (int i = 0; i < rank; i++) s->dims[i] = dims[i];
    for (int i = 1; i < rank; i++) row *= dims[i];
    s->row_elems = row;
    /* whole examples per chunk while they fit; else shrink the leading
     * non-example axes until one chunk is near CHUNK_BYTES */
    for (int i = 0; i < rank; i++) chunk[i] = dims[i] ? dims[i] : 1;
    hsize_t per = row * esize >= CHUNK_BYTES ? 1 : CHUNK_BYTES / (row * esize);
    chunk[0] = per < dims[0] ? per : dims[0];
    if (!chunk[0]) chunk[0] = 1;
    for (int i = 1; i < rank && row * esize > CHUNK_BYTES; i++) {
        size_t inner = row / chunk[i];
        hsize_t keep = inner * esize >= CHUNK_BYTES ? 1 : CHUNK_BYTES / (inner * esize);
        if (keep < chunk[i]) chunk[i] = keep;
        row = inner * chunk[i];
    }
    hid_t ft = type == H5OUT_F16 ? half_type() : H5Tcopy(type == H5OUT_I32 ? H5T_STD_I32LE : H5T_IEEE_F32LE);
    hid_t sp = H5Screate_simple(rank, dims, NULL), pl = H5Pcreate(H5P_DATASET_CREATE), lc = link_props();
    errno = 0;
    int ok = ft >= 0 && sp >= 0 && pl >= 0 && lc >= 0 && H5Pset_chunk(pl, rank, chunk) >= 0;
    if (ok) s->ds = H5Dcreate2(o->file, name, ft, sp, lc, pl, H5P_DEFAULT);
    if (ft >= 0) H5Tclose(ft);
    if (sp >= 0) H5Sclose(sp);
    if (pl >= 0) H5Pclose(pl);
    if (lc >= 0) H5Pclose(lc);
    if (s->ds < 0) return failed(o, err, "cannot create dataset ", name);
    return SL_OK;
}

int sl_h5out_write(sl_h5out *o, sl_h5set *s, hsize_t first, hsize_t count, const void *buf, sl_error *err)
{
    hsize_t start[4] = {first, 0, 0, 0}, cnt[4];
    cnt[0] = count;
    for (int i = 1; i < s->rank; i++) cnt[i] = s->dims[i];
    size_t n = (size_t)count * s->row_elems;
    uint16_t *half = NULL;
    hid_t mt;
    if (s->type == H5OUT_F16) {
        half = malloc((n ? n : 1) * sizeof *half);
        if (!half) return sl_fail(err, SL_ERUNTIME, "out of memory writing %s", s->name);
        for (size_t i = 0; i < n; i++) half[i] = f32_to_half(((const float *)buf)[i]);
        buf = half;
        mt = half_type();
    } else {
        mt = H5Tcopy(s->type == H5OUT_I32 ? H5T_NATIVE_INT32 : H5T_NATIVE_FLOAT);
    }
    errno = 0;
    hid_t fs = H5Dget_space(s->ds), ms = H5Screate_simple(s->rank, cnt, NULL);
    herr_t rc = mt < 0 || fs < 0 || ms < 0 ? -1 : H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL);
    if (rc >= 0) rc = H5Dwrite(s->ds, mt, ms, fs, H5P_DEFAULT, buf);
    if (mt >= 0) H5Tclose(mt);
    if (fs >= 0) H5Sclose(fs);
    if (ms >= 0) H5Sclose(ms);
    free(half);
    if (rc < 0) return failed(o, err, "cannot write ", s->name);
    return SL_OK;
}

int sl_h5out_copy_rows(sl_h5out *o, sl_h5set *s, const char *src, hsize_t first, hsize_t count, sl_error *err)
{
    hid_t f = H5Fopen(src, H5F_ACC_RDONLY, H5P_DEFAULT), ds = f < 0 ? -1 : H5Dopen2(f, s->name, H5P_DEFAULT);
    hid_t t = ds < 0 ? -1 : H5Dget_type(ds), sfs = ds < 0 ? -1 : H5Dget_space(ds), dfs = H5Dget_space(s->ds);
    size_t row = t < 0 ? 0 : H5Tget_size(t) * s->row_elems;
    int rc = t >= 0 && sfs >= 0 && dfs >= 0 && row ? SL_OK : sl_fail(err, SL_ERUNTIME, "%s: cannot read %s", src, s->name);
    hsize_t step = row ? (64u << 20) / row : 1;
    if (!step) step = 1;
    void *buf = rc ? NULL : malloc((size_t)(step < count ? step : count) * row + 1);
    if (!rc && !buf) rc = sl_fail(err, SL_ERUNTIME, "out of memory merging %s", s->name);
    for (hsize_t r = first; !rc && r < first + count; r += step) {
        hsize_t start[4] = {r, 0, 0, 0}, cnt[4] = {first + count - r < step ? first + count - r : step};
        for (int i = 1; i < s->rank; i++) cnt[i] = s->dims[i];
        hid_t ms = H5Screate_simple(s->rank, cnt, NULL);
        herr_t e = ms < 0 ? -1 : H5Sselect_hyperslab(sfs, H5S_SELECT_SET, start, NULL, cnt, NULL);
        if (e >= 0) e = H5Dread(ds, t, ms, sfs, H5P_DEFAULT, buf);
        if (e < 0) rc = sl_fail(err, SL_ERUNTIME, "%s: reading %s failed", src, s->name);
        errno = 0;
        if (!rc) e = H5Sselect_hyperslab(dfs, H5S_SELECT_SET, start, NULL, cnt, NULL);
        if (!rc && e >= 0) e = H5Dwrite(s->ds, t, ms, dfs, H5P_DEFAULT, buf);
        if (!rc && e < 0) rc = failed(o, err, "cannot write ", s->name);
        if (ms >= 0) H5Sclose(ms);
    }
    free(buf);
    if (dfs >= 0) H5Sclose(dfs);
    if (sfs >= 0) H5Sclose(sfs);
    if (t >= 0) H5Tclose(t);
    if (ds >= 0) H5Dclose(ds);
    if (f >= 0) H5Fclose(f);
    return rc;
}

void sl_h5set_close(sl_h5set *s)
{
    if (s->ds < 0) return;
    sl_h5out *o = s->out;
    if (o && !o->fail.code) {
        errno = 0;
        sl_error ignored = {0};
        if (H5Dflush(s->ds) < 0) failed(o, &ignored, "cannot write ", s->name);
    }
    if (o && o->fail.code) discard_writes(o);
    if (H5Dclose(s->ds) < 0) close_failed(); /* nothing was left to write, or it went nowhere */
    s->ds = -1;
}

int sl_h5out_attr_str(sl_h5out *o, const char *name, const char *value, sl_error *err)
{
    errno = 0;
    hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR), a = -1;
    herr_t rc = t < 0 || sp < 0 ? -1 : H5Tset_size(t, strlen(value) + 1);
    if (rc >= 0) a = H5Acreate2(o->file, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) rc = H5Awrite(a, t, value);
    else rc = -1;
    if (a >= 0) H5Aclose(a);
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    if (rc < 0) return failed(o, err, "cannot write attribute ", name);
    return SL_OK;
}

static int attr_scalar(sl_h5out *o, const char *name, hid_t ftype, hid_t mtype, const void *value, sl_error *err)
{
    errno = 0;
    hid_t sp = H5Screate(H5S_SCALAR), a = -1;
    herr_t rc = sp < 0 ? -1 : 0;
    if (!rc) a = H5Acreate2(o->file, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
    rc = a < 0 ? -1 : H5Awrite(a, mtype, value);
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
    if (rc < 0) return failed(o, err, "cannot write attribute ", name);
    return SL_OK;
}

int sl_h5out_attr_double(sl_h5out *o, const char *name, double value, sl_error *err)
{
    return attr_scalar(o, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value, err);
}

int sl_h5out_attr_int(sl_h5out *o, const char *name, long value, sl_error *err)
{
    return attr_scalar(o, name, H5T_STD_I64LE, H5T_NATIVE_LONG, &value, err);
}

int sl_h5out_strings(sl_h5out *o, const char *name, const char *const *strs, int n, sl_error *err)
{
    hsize_t dims = (hsize_t)n;
    errno = 0;
    hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate_simple(1, &dims, NULL), lc = link_props(), d = -1;
    herr_t rc = t < 0 || sp < 0 || lc < 0 ? -1 : H5Tset_size(t, H5T_VARIABLE);
    if (rc >= 0) rc = H5Tset_cset(t, H5T_CSET_UTF8);
    if (rc >= 0) d = H5Dcreate2(o->file, name, t, sp, lc, H5P_DEFAULT, H5P_DEFAULT);
    rc = d < 0 ? -1 : H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, strs);
    if (d >= 0) H5Dclose(d);
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    if (lc >= 0) H5Pclose(lc);
    if (rc < 0) return failed(o, err, "cannot write ", name);
    return SL_OK;
}

/* Ids of the file's objects still open (a caller's slip) are closed with
 * it: one left open would keep the file open past H5Fclose. */
static void close_objects(hid_t file)
{
    unsigned types = H5F_OBJ_DATASET | H5F_OBJ_GROUP | H5F_OBJ_DATATYPE | H5F_OBJ_ATTR | H5F_OBJ_LOCAL;
    hid_t ids[64];
    ssize_t n;
    while ((n = H5Fget_obj_ids(file, types, 64, ids)) > 0) {
        int closed = 0;
        for (ssize_t i = 0; i < n; i++) closed += H5Oclose(ids[i]) >= 0 || H5Aclose(ids[i]) >= 0;
        if (closed < n) close_failed();
        if (!closed) break;
    }
}

int sl_h5out_commit(sl_h5out *o, sl_error *err)
{
    int rc = o->fail.code ? sl_fail(err, o->fail.code, "%s", o->fail.msg) : SL_OK;
    if (!rc) {
        /* everything out now, where a failure can still be undone: a close
         * that fails would leave HDF5 a broken id (see discard_writes) */
        errno = 0;
        if (H5Fflush(o->file, H5F_SCOPE_GLOBAL) < 0) rc = failed(o, err, "cannot write", NULL);
    }
    if (!rc) close_objects(o->file);
    if (rc) {
        sl_h5out_abort(o);
        return rc;
    }
    errno = 0;
    if (H5Fclose(o->file) < 0) {
        rc = failed(o, err, "cannot close", NULL);
        close_failed();
    }
    o->file = -1;
    if (!rc && rename(o->tmp, o->path) != 0)
        rc = sl_fail(err, SL_ERUNTIME, "%s: cannot rename to %s: %s", o->tmp, o->path, strerror(errno));
    if (rc) unlink(o->tmp);
    free(o->path);
    free(o->tmp);
    o->path = o->tmp = NULL;
    return rc;
}

void sl_h5out_abort(sl_h5out *o)
{
    if (o->file >= 0) {
        discard_writes(o);
        close_objects(o->file);
        if (H5Fclose(o->file) < 0) close_failed();
        o->file = -1;
    }
    if (o->tmp) unlink(o->tmp);
    free(o->path);
    free(o->tmp);
    memset(o, 0, sizeof *o);
    o->file = -1;
}
