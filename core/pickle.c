#include "core/pickle.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What a value on the VM's stack is. The first four are immediate; the rest
 * live in the arena, shared by reference as Python shares objects (a memo
 * entry and the stack may hold the same dict). */
enum { V_NONE, V_BOOL, V_INT, V_FLOAT, V_GLOBAL, V_STR, V_TUPLE, V_LIST, V_DICT, V_STORAGE, V_TENSOR };
static const char *const KIND[] = {"None", "bool", "int", "float", "global", "str", "tuple", "list", "dict", "storage", "tensor"};

/* The globals a state_dict's pickle names; a dtype stands for its storage
 * type in a storage's persistent id. */
enum { G_ODICT, G_TENSOR, G_PARAM, G_PARAM_STATE, G_F32, G_F16, G_BF16, G_I64, G_I32, G_I16, G_I8, G_U8, G_BOOL, G_F64 };
/* a storage of one of the types from G_I64 on is a tag: a tensor on it is
 * refused by name if it is in the state_dict read (a buffer such as
 * position_ids), and harmless elsewhere (an optimizer's state) */
#define PK_UNREAD_STORAGE (-1)
static const struct {
    const char *module, *name;
    int id;
} GLOBALS[] = {
    {"collections", "OrderedDict", G_ODICT},
    {"torch._utils", "_rebuild_tensor_v2", G_TENSOR},
    {"torch._utils", "_rebuild_parameter", G_PARAM},
    {"torch._utils", "_rebuild_parameter_with_state", G_PARAM_STATE},
    {"torch", "FloatStorage", G_F32},
    {"torch", "HalfStorage", G_F16},
    {"torch", "BFloat16Storage", G_BF16},
    {"torch", "float32", G_F32},
    {"torch", "float16", G_F16},
    {"torch", "bfloat16", G_BF16},
    {"torch", "LongStorage", G_I64},
    {"torch", "IntStorage", G_I32},
    {"torch", "ShortStorage", G_I16},
    {"torch", "CharStorage", G_I8},
    {"torch", "ByteStorage", G_U8},
    {"torch", "BoolStorage", G_BOOL},
    {"torch", "DoubleStorage", G_F64},
    {"torch", "int64", G_I64},
    {"torch", "int32", G_I32},
    {"torch", "int16", G_I16},
    {"torch", "int8", G_I8},
    {"torch", "uint8", G_U8},
    {"torch", "bool", G_BOOL},
    {"torch", "float64", G_F64},
};
static const char *const GLOBAL_NAME[] = {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2",
                                          "torch._utils._rebuild_parameter",
                                          "torch._utils._rebuild_parameter_with_state", "a float32 storage type",
                                          "a float16 storage type", "a bfloat16 storage type", "torch.LongStorage (int64)",
                                          "torch.IntStorage (int32)", "torch.ShortStorage (int16)", "torch.CharStorage (int8)",
                                          "torch.ByteStorage (uint8)", "torch.BoolStorage (bool)", "torch.DoubleStorage (float64)"};

typedef struct obj obj;
typedef struct {
    int kind;
    union {
        int64_t i; /* V_BOOL, V_INT, V_GLOBAL (a G_ id); a V_FLOAT's value is never read */
        obj *o;
    } u;
} val;

struct obj {
    int depth; /* nesting, 1 for a leaf */
    union {
        struct {
            char *s;
            size_t len;
        } str;
        struct {
            val *v;
            size_t n, cap; /* a dict holds n/2 key, value pairs */
        } seq; /* a tuple, a list, or a dict's keys and values in turn */
        struct {
            int dtype, type; /* ST_ dtype or PK_UNREAD_STORAGE; the G_ id */
            int64_t numel;
            const obj *key;
        } sto;
        struct {
            const obj *sto;
            int64_t offset, *dims; /* shape then strides */
            int ndim;
        } ten;
    } u;
};

/* Everything the VM allocates comes from here and is freed at once:
 * nothing is ever freed piecemeal, so cycles (a dict put into itself
 * through the memo) cost nothing, and no walk recurses. */
typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char mem[];
} chunk;

typedef struct {
    const unsigned char *p;
    size_t len, at, op_at;
    const char *what;
    sl_error *err;
    chunk *arena;
    val *stack;
    size_t sp, stack_cap;
    size_t marks[PK_MAX_DEPTH];
    int n_marks;
    val *memo;
    size_t memo_len, memo_cap;
    val result;
} vm;

static int fail(vm *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(vm *m, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sl_fail(m->err, SL_EINPUT, "%s: byte %zu: %s", m->what, m->op_at, msg);
}

static int oom(vm *m) { return sl_fail(m->err, SL_ERUNTIME, "%s: out of memory", m->what); }

static void *arena_alloc(vm *m, size_t n)
{
    n = n ? (n + 15) & ~(size_t)15 : 16;
    chunk *c = m->arena;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        c = malloc(sizeof *c + cap);
        if (!c) return NULL;
        c->next = m->arena;
        c->used = 0;
        c->cap = cap;
        m->arena = c;
    }
    void *p = c->mem + c->used;
    c->used += n;
    return p;
}

static obj *new_obj(vm *m, int depth)
{
    obj *o = arena_alloc(m, sizeof *o);
    if (o) {
        memset(o, 0, sizeof *o);
        o->depth = depth;
    }
    return o;
}

static int depth_of(val v) { return v.kind >= V_STR ? v.u.o->depth : 0; }

static int push(vm *m, val v)
{
    if (m->sp == m->stack_cap) {
        size_t cap = m->stack_cap ? 2 * m->stack_cap : 64;
        val *s = realloc(m->stack, cap * sizeof *s);
        if (!s) return oom(m);
        m->stack = s;
        m->stack_cap = cap;
    }
    m->stack[m->sp++] = v;
    return SL_OK;
}

static int push_obj(vm *m, int kind, obj *o)
{
    if (!o) return oom(m);
    return push(m, (val){.kind = kind, .u.o = o});
}

/* As in Python's unpickler a MARK starts a fresh stack: what lies below
 * the innermost mark is out of reach until the mark is popped. */
static size_t above_mark(const vm *m) { return m->sp - (m->n_marks ? m->marks[m->n_marks - 1] : 0); }

static int need(vm *m, size_t n, const char *op)
{
    if (above_mark(m) < n) return fail(m, "%s needs %zu values on the stack, it holds %zu", op, n, above_mark(m));
    return SL_OK;
}

static int pop_mark(vm *m, const char *op, size_t *base)
{
    if (!m->n_marks) return fail(m, "%s without a MARK", op);
    *base = m->marks[--m->n_marks];
    return SL_OK;
}

/* Reads n argument bytes of the current opcode. */
static const unsigned char *take(vm *m, size_t n)
{
    if (m->len - m->at < n) return NULL;
    const unsigned char *p = m->p + m->at;
    m->at += n;
    return p;
}

static uint64_t le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static int truncated(vm *m) { return fail(m, "the opcode's argument runs past the end (%zu bytes)", m->len); }

static int new_seq(vm *m, int kind, const val *items, size_t n, size_t cap)
{
    int depth = 0;
    for (size_t i = 0; i < n; i++)
        if (depth_of(items[i]) > depth) depth = depth_of(items[i]);
    if (depth + 1 > PK_MAX_DEPTH) return fail(m, "values nested deeper than %d", PK_MAX_DEPTH);
    obj *o = new_obj(m, depth + 1);
    val *v = o && cap ? arena_alloc(m, cap * sizeof *v) : NULL;
    if (!o || (cap && !v)) return oom(m);
    if (n) memcpy(v, items, n * sizeof *v);
    o->u.seq.v = v;
    o->u.seq.n = n;
    o->u.seq.cap = cap;
    return push_obj(m, kind, o);
}

/* The top n values (above the innermost mark) become one tuple. */
static int make_tuple(vm *m, size_t n, const char *op)
{
    int rc = need(m, n, op);
    if (rc) return rc;
    m->sp -= n;
    return new_seq(m, V_TUPLE, n ? m->stack + m->sp : NULL, n, n);
}

static int dict_add(vm *m, obj *d, const val *kv, size_t n)
{
    int depth = d->depth;
    for (size_t i = 0; i < n; i++)
        if (depth_of(kv[i]) + 1 > depth) depth = depth_of(kv[i]) + 1;
    if (depth > PK_MAX_DEPTH) return fail(m, "values nested deeper than %d", PK_MAX_DEPTH);
    d->depth = depth;
    if (!n) return SL_OK;
    if (d->u.seq.cap - d->u.seq.n < n) {
        /* doubling in the arena: the abandoned arrays sum to less than the last */
        size_t cap = 2 * (d->u.seq.n + n);
        val *v = arena_alloc(m, cap * sizeof *v);
        if (!v) return oom(m);
        if (d->u.seq.n) memcpy(v, d->u.seq.v, d->u.seq.n * sizeof *v);
        d->u.seq.v = v;
        d->u.seq.cap = cap;
    }
    memcpy(d->u.seq.v + d->u.seq.n, kv, n * sizeof *kv);
    d->u.seq.n += n;
    return SL_OK;
}

static int push_string(vm *m, uint64_t n)
{
    if (n > m->len - m->at) return truncated(m);
    const unsigned char *s = take(m, (size_t)n);
    size_t bad = st_bad_text_at(s, (size_t)n, 1);
    if (bad < n) return fail(m, "string byte %zu (0x%02x) is not UTF-8 text", bad, s[bad]);
    obj *o = new_obj(m, 1);
    char *copy = o ? arena_alloc(m, (size_t)n + 1) : NULL;
    if (!copy) return oom(m);
    memcpy(copy, s, (size_t)n);
    copy[n] = 0;
    o->u.str.s = copy;
    o->u.str.len = (size_t)n;
    return push_obj(m, V_STR, o);
}

static int push_global(vm *m, const char *module, size_t mlen, const char *name, size_t nlen)
{
    for (size_t i = 0; i < sizeof GLOBALS / sizeof *GLOBALS; i++)
        if (strlen(GLOBALS[i].module) == mlen && !memcmp(GLOBALS[i].module, module, mlen)
            && strlen(GLOBALS[i].name) == nlen && !memcmp(GLOBALS[i].name, name, nlen))
            return push(m, (val){.kind = V_GLOBAL, .u.i = GLOBALS[i].id});
    int mn = mlen > 80 ? 80 : (int)mlen, nn = nlen > 80 ? 80 : (int)nlen;
    if (mlen == 5 && !memcmp(module, "torch", 5) && nlen > 7 && !memcmp(name + nlen - 7, "Storage", 7))
        return fail(m, "storage type torch.%.*s is not read (float32, float16 and bfloat16 tensors are)", nn, name);
    return fail(m, "global %.*s.%.*s is not allowed: a state_dict needs only collections.OrderedDict, "
                   "torch._utils._rebuild_tensor_v2/_rebuild_parameter and float storages (nothing in the file is run)",
                mn, module, nn, name);
}

/* GLOBAL's argument: "module\nname\n". */
static int op_global(vm *m)
{
    const char *line[2];
    size_t n[2];
    for (int k = 0; k < 2; k++) {
        const unsigned char *s = m->p + m->at, *nl = memchr(s, '\n', m->len - m->at);
        if (!nl) return truncated(m);
        line[k] = (const char *)s;
        n[k] = (size_t)(nl - s);
        m->at += n[k] + 1;
    }
    return push_global(m, line[0], n[0], line[1], n[1]);
}

static val pop(vm *m) { return m->stack[--m->sp]; }

static int op_stack_global(vm *m)
{
    int rc = need(m, 2, "STACK_GLOBAL");
    if (rc) return rc;
    val name = pop(m), module = pop(m);
    if (module.kind != V_STR || name.kind != V_STR) return fail(m, "STACK_GLOBAL needs two strings");
    return push_global(m, module.u.o->u.str.s, module.u.o->u.str.len, name.u.o->u.str.s, name.u.o->u.str.len);
}

static int memo_put(vm *m, uint64_t idx)
{
    int rc = need(m, 1, "a memo put");
    if (rc) return rc;
    /* picklers number entries in order; a sparse index would make the memo
     * as large as the index says */
    if (idx > m->memo_len) return fail(m, "memo index %llu out of range (%zu entries so far)", (unsigned long long)idx, m->memo_len);
    if (idx == m->memo_len) {
        if (m->memo_len == m->memo_cap) {
            size_t cap = m->memo_cap ? 2 * m->memo_cap : 64;
            val *v = realloc(m->memo, cap * sizeof *v);
            if (!v) return oom(m);
            m->memo = v;
            m->memo_cap = cap;
        }
        m->memo_len++;
    }
    m->memo[idx] = m->stack[m->sp - 1];
    return SL_OK;
}

static int memo_get(vm *m, uint64_t idx)
{
    if (idx >= m->memo_len) return fail(m, "memo index %llu out of range (%zu entries)", (unsigned long long)idx, m->memo_len);
    return push(m, m->memo[idx]);
}

static int is_str(val v, const char *s) { return v.kind == V_STR && !strcmp(v.u.o->u.str.s, s); }

/* BINPERSID: ('storage', storage type, key, location, numel) names one
 * of the archive's storages; nothing is read here. */
static int op_persid(vm *m)
{
    int rc = need(m, 1, "BINPERSID");
    if (rc) return rc;
    val pid = pop(m);
    const val *a = pid.kind == V_TUPLE ? pid.u.o->u.seq.v : NULL;
    if (!a || pid.u.o->u.seq.n != 5 || !is_str(a[0], "storage"))
        return fail(m, "a persistent id that is not ('storage', type, key, location, numel)");
    if (a[1].kind != V_GLOBAL || a[1].u.i < G_F32)
        return fail(m, "a storage's type is a %s, not a storage type", a[1].kind == V_GLOBAL ? GLOBAL_NAME[a[1].u.i] : KIND[a[1].kind]);
    if (a[2].kind != V_STR || a[3].kind != V_STR || a[4].kind != V_INT || a[4].u.i < 0)
        return fail(m, "a storage's key, location and size must be str, str and a non-negative int");
    obj *o = new_obj(m, 1);
    if (!o) return oom(m);
    o->u.sto.dtype = a[1].u.i == G_F32 ? ST_F32 : a[1].u.i == G_F16 ? ST_F16 : a[1].u.i == G_BF16 ? ST_BF16 : PK_UNREAD_STORAGE;
    o->u.sto.type = (int)a[1].u.i;
    o->u.sto.key = a[2].u.o;
    o->u.sto.numel = a[4].u.i;
    return push_obj(m, V_STORAGE, o);
}

/* A tuple of non-negative ints, at most ST_MAX_DIMS of them. */
static int dims_of(vm *m, val v, const char *what, int64_t *out, int *n)
{
    if (v.kind != V_TUPLE || v.u.o->u.seq.n > ST_MAX_DIMS)
        return fail(m, "a tensor's %s is not a tuple of at most %d ints", what, ST_MAX_DIMS);
    *n = (int)v.u.o->u.seq.n;
    for (int i = 0; i < *n; i++) {
        val d = v.u.o->u.seq.v[i];
        if (d.kind != V_INT || d.u.i < 0) return fail(m, "a tensor's %s entry %d is not a non-negative int", what, i);
        out[i] = d.u.i;
    }
    return SL_OK;
}

/* _rebuild_tensor_v2(storage, offset, size, stride, requires_grad,
 * backward_hooks[, metadata]). */
static int rebuild_tensor(vm *m, const val *a, size_t n)
{
    if (n != 6 && n != 7) return fail(m, "_rebuild_tensor_v2 called with %zu arguments (6 or 7)", n);
    if (a[0].kind != V_STORAGE) return fail(m, "_rebuild_tensor_v2's storage is a %s", KIND[a[0].kind]);
    if (a[1].kind != V_INT || a[1].u.i < 0) return fail(m, "_rebuild_tensor_v2's storage offset is not a non-negative int");
    if (a[4].kind != V_BOOL) return fail(m, "_rebuild_tensor_v2's requires_grad is not a bool");
    if (a[5].kind != V_DICT || a[5].u.o->u.seq.n) return fail(m, "_rebuild_tensor_v2's backward hooks are not an empty dict");
    if (n == 7 && a[6].kind != V_DICT && a[6].kind != V_NONE) return fail(m, "_rebuild_tensor_v2's metadata is a %s", KIND[a[6].kind]);
    int64_t shape[ST_MAX_DIMS], stride[ST_MAX_DIMS];
    int ns = 0, nt = 0;
    int rc = dims_of(m, a[2], "size", shape, &ns);
    if (!rc) rc = dims_of(m, a[3], "stride", stride, &nt);
    if (rc) return rc;
    if (ns != nt) return fail(m, "a tensor's size has %d entries, its stride %d", ns, nt);
    obj *o = new_obj(m, 2);
    int64_t *dims = o ? arena_alloc(m, 2 * (size_t)ns * sizeof *dims) : NULL;
    if (!dims) return oom(m);
    memcpy(dims, shape, (size_t)ns * sizeof *dims);
    memcpy(dims + ns, stride, (size_t)ns * sizeof *dims);
    o->u.ten.sto = a[0].u.o;
    o->u.ten.offset = a[1].u.i;
    o->u.ten.dims = dims;
    o->u.ten.ndim = ns;
    return push_obj(m, V_TENSOR, o);
}

static int op_reduce(vm *m)
{
    int rc = need(m, 2, "REDUCE");
    if (rc) return rc;
    val args = pop(m), fn = pop(m);
    if (fn.kind != V_GLOBAL) return fail(m, "REDUCE calls a %s", KIND[fn.kind]);
    if (args.kind != V_TUPLE) return fail(m, "REDUCE's arguments are a %s, not a tuple", KIND[args.kind]);
    const val *a = args.u.o->u.seq.v;
    size_t n = args.u.o->u.seq.n;
    switch (fn.u.i) {
    case G_ODICT:
        if (n) return fail(m, "OrderedDict called with arguments");
        return new_seq(m, V_DICT, NULL, 0, 0);
    case G_TENSOR:
        return rebuild_tensor(m, a, n);
    case G_PARAM:
    case G_PARAM_STATE:
        /* an nn.Parameter is its tensor; requires_grad and any state
         * (the Parameter's __dict__) mean nothing for inference */
        if (n != (fn.u.i == G_PARAM ? 3u : 4u) || a[0].kind != V_TENSOR || a[1].kind != V_BOOL || a[2].kind != V_DICT
            || a[2].u.o->u.seq.n)
            return fail(m, "%s called with arguments other than (tensor, requires_grad, {}%s)", GLOBAL_NAME[fn.u.i],
                        fn.u.i == G_PARAM ? "" : ", state");
        return push(m, a[0]);
    default:
        return fail(m, "REDUCE calls %s", GLOBAL_NAME[fn.u.i]);
    }
}

static int op_setitems(vm *m, size_t base)
{
    size_t n = m->sp - base;
    if (n % 2) return fail(m, "SETITEMS with an odd number (%zu) of keys and values", n);
    if (above_mark(m) < n + 1 || m->stack[base - 1].kind != V_DICT)
        return fail(m, "SETITEM(S) into something that is not a dict");
    int rc = dict_add(m, m->stack[base - 1].u.o, m->stack + base, n);
    m->sp = base;
    return rc;
}

/* APPEND(S) onto the list below the values: an optimizer's param_groups
 * and their params (a training checkpoint's other entries). */
static int op_appends(vm *m, size_t base)
{
    if (above_mark(m) < m->sp - base + 1 || m->stack[base - 1].kind != V_LIST)
        return fail(m, "APPEND(S) onto something that is not a list");
    int rc = dict_add(m, m->stack[base - 1].u.o, m->stack + base, m->sp - base);
    m->sp = base;
    return rc;
}

/* The opcodes torch.save's pickler writes for a state_dict, and for the
 * dict of a training checkpoint around one (floats, lists). */
enum {
    MARK = '(', STOP = '.', BININT = 'J', BININT1 = 'K', BININT2 = 'M', NONE = 'N', BINPERSID = 'Q', REDUCE = 'R',
    BINUNICODE = 'X', EMPTY_TUPLE = ')', BUILD = 'b', GLOBAL = 'c', BINGET = 'h', LONG_BINGET = 'j', BINPUT = 'q',
    LONG_BINPUT = 'r', SETITEM = 's', TUPLE = 't', SETITEMS = 'u', EMPTY_DICT = '}', PROTO = 0x80, NEWTRUE = 0x88,
    NEWFALSE = 0x89, LONG1 = 0x8a, BINFLOAT = 'G', EMPTY_LIST = ']', APPEND = 'a', APPENDS = 'e', TUPLE1 = 0x85, TUPLE2 = 0x86, TUPLE3 = 0x87, SHORT_BINUNICODE = 0x8c,
    BINUNICODE8 = 0x8d, STACK_GLOBAL = 0x93, MEMOIZE = 0x94, FRAME = 0x95
};

static int step(vm *m, unsigned op)
{
    const unsigned char *a;
    size_t base = 0;
    int rc;
    switch (op) {
    case PROTO:
        if (!(a = take(m, 1))) return truncated(m);
        if (a[0] < 2 || a[0] > 5) return fail(m, "pickle protocol %d (torch.save writes 2)", a[0]);
        return SL_OK;
    case FRAME: /* protocol 4 framing: a length prefix, transparent here */
        return take(m, 8) ? SL_OK : truncated(m);
    case MARK:
        if (m->n_marks == PK_MAX_DEPTH) return fail(m, "MARKs nested deeper than %d", PK_MAX_DEPTH);
        m->marks[m->n_marks++] = m->sp;
        return SL_OK;
    case EMPTY_DICT:
        return new_seq(m, V_DICT, NULL, 0, 0);
    case EMPTY_TUPLE:
        return new_seq(m, V_TUPLE, NULL, 0, 0);
    case EMPTY_LIST:
        return new_seq(m, V_LIST, NULL, 0, 0);
    case APPEND:
        if ((rc = need(m, 2, "APPEND"))) return rc;
        return op_appends(m, m->sp - 1);
    case APPENDS:
        if ((rc = pop_mark(m, "APPENDS", &base))) return rc;
        return op_appends(m, base);
    case BINFLOAT: /* a learning rate, a loss: kept as a tag */
        if (!take(m, 8)) return truncated(m);
        return push(m, (val){.kind = V_FLOAT});
    case TUPLE:
        if ((rc = pop_mark(m, "TUPLE", &base))) return rc;
        return make_tuple(m, m->sp - base, "TUPLE");
    case TUPLE1:
    case TUPLE2:
    case TUPLE3:
        return make_tuple(m, op - TUPLE1 + 1u, "TUPLE1/2/3");
    case BINUNICODE:
        if (!(a = take(m, 4))) return truncated(m);
        return push_string(m, le(a, 4));
    case SHORT_BINUNICODE:
        if (!(a = take(m, 1))) return truncated(m);
        return push_string(m, a[0]);
    case BINUNICODE8:
        if (!(a = take(m, 8))) return truncated(m);
        return push_string(m, le(a, 8));
    case BINPUT:
        if (!(a = take(m, 1))) return truncated(m);
        return memo_put(m, a[0]);
    case LONG_BINPUT:
        if (!(a = take(m, 4))) return truncated(m);
        return memo_put(m, le(a, 4));
    case MEMOIZE:
        return memo_put(m, m->memo_len);
    case BINGET:
        if (!(a = take(m, 1))) return truncated(m);
        return memo_get(m, a[0]);
    case LONG_BINGET:
        if (!(a = take(m, 4))) return truncated(m);
        return memo_get(m, le(a, 4));
    case GLOBAL:
        return op_global(m);
    case STACK_GLOBAL:
        return op_stack_global(m);
    case BININT:
        if (!(a = take(m, 4))) return truncated(m);
        return push(m, (val){.kind = V_INT, .u.i = (int32_t)(uint32_t)le(a, 4)});
    case BININT1:
        if (!(a = take(m, 1))) return truncated(m);
        return push(m, (val){.kind = V_INT, .u.i = a[0]});
    case BININT2:
        if (!(a = take(m, 2))) return truncated(m);
        return push(m, (val){.kind = V_INT, .u.i = (int64_t)le(a, 2)});
    case LONG1: {
        if (!(a = take(m, 1))) return truncated(m);
        int n = a[0];
        if (n > 8) return fail(m, "LONG1 of %d bytes (at most 8)", n);
        if (!(a = take(m, (size_t)n))) return truncated(m);
        uint64_t u = le(a, n);
        if (n && n < 8 && (a[n - 1] & 0x80)) u |= ~(uint64_t)0 << (8 * n); /* two's complement */
        return push(m, (val){.kind = V_INT, .u.i = (int64_t)u});
    }
    case NONE:
        return push(m, (val){.kind = V_NONE});
    case NEWTRUE:
    case NEWFALSE:
        return push(m, (val){.kind = V_BOOL, .u.i = op == NEWTRUE});
    case BINPERSID:
        return op_persid(m);
    case REDUCE:
        return op_reduce(m);
    case BUILD:
        /* OrderedDict's state: the _metadata torch attaches (versions) */
        if ((rc = need(m, 2, "BUILD"))) return rc;
        if (m->stack[m->sp - 2].kind != V_DICT) return fail(m, "BUILD on a %s", KIND[m->stack[m->sp - 2].kind]);
        m->sp--;
        return SL_OK;
    case SETITEM:
        if ((rc = need(m, 3, "SETITEM"))) return rc;
        return op_setitems(m, m->sp - 2);
    case SETITEMS:
        if ((rc = pop_mark(m, "SETITEMS", &base))) return rc;
        return op_setitems(m, base);
    default:
        return fail(m, "opcode 0x%02x%s%c%s is not one a state_dict's pickle uses", op, op >= 0x20 && op < 0x7f ? " ('" : "",
                    op >= 0x20 && op < 0x7f ? op : ' ', op >= 0x20 && op < 0x7f ? "')" : "");
    }
}

static int run(vm *m)
{
    while (m->at < m->len) {
        m->op_at = m->at;
        unsigned op = m->p[m->at++];
        if (op == STOP) {
            int rc = need(m, 1, "STOP");
            if (rc) return rc;
            if (m->at != m->len) return fail(m, "%zu bytes after STOP", m->len - m->at);
            m->result = pop(m);
            return SL_OK;
        }
        int rc = step(m, op);
        if (rc) return rc;
    }
    m->op_at = m->len;
    return fail(m, "ends without STOP (truncated?)");
}

static char *dup_str(const obj *s) { return strdup(s->u.str.s); }

/* A dict of str keys to tensors, with at least one entry. */
static int is_state_dict(val v)
{
    if (v.kind != V_DICT || !v.u.o->u.seq.n) return 0;
    for (size_t i = 0; i < v.u.o->u.seq.n; i += 2)
        if (v.u.o->u.seq.v[i].kind != V_STR || v.u.o->u.seq.v[i + 1].kind != V_TENSOR) return 0;
    return 1;
}

/* The state_dict the file holds: the top dict itself, or the one entry of
 * it that is a state_dict (a training checkpoint as PyTorch's tutorial
 * saves it: {"epoch": ..., "model_state_dict": ..., "optimizer_state_dict":
 * ..., "loss": ...}; the optimizer's state is keyed by ints, so it is not
 * one). Two such entries are ambiguous. */
static int pick_state_dict(vm *m, const obj **out)
{
    const obj *d = m->result.u.o;
    size_t n = d->u.seq.n / 2, found = 0, first_bad = n;
    char names[400] = "";
    for (size_t i = 0; i < n; i++) {
        val k = d->u.seq.v[2 * i], v = d->u.seq.v[2 * i + 1];
        if (v.kind != V_TENSOR && first_bad == n) first_bad = i;
        if (k.kind != V_STR || !is_state_dict(v)) continue;
        size_t len = strlen(names);
        if (found < 4) snprintf(names + len, sizeof names - len, "%s'%.80s'", found ? ", " : "", k.u.o->u.str.s);
        if (!found++) *out = v.u.o;
    }
    if (first_bad == n) {
        *out = d; /* a state_dict itself (or an empty dict) */
        return SL_OK;
    }
    if (found == 1) return SL_OK;
    if (found > 1)
        return sl_fail(m->err, SL_EINPUT, "%s: holds %zu state_dicts (%s%s): save the model's alone (torch.save(model.state_dict(), F))",
                       m->what, found, names, found > 4 ? ", ..." : "");
    val k = d->u.seq.v[2 * first_bad], v = d->u.seq.v[2 * first_bad + 1];
    if (k.kind != V_STR) return sl_fail(m->err, SL_EINPUT, "%s: entry %zu's key is a %s, not a str", m->what, first_bad, KIND[k.kind]);
    return sl_fail(m->err, SL_EINPUT,
                   "%s: '%.200s' is a %s, not a tensor, and no entry is a state_dict (save model.state_dict() alone)", m->what,
                   k.u.o->u.str.s, KIND[v.kind]);
}

/* The result: string keys to tensors. */
static int collect(vm *m, pk_state_dict *out)
{
    if (m->result.kind != V_DICT)
        return sl_fail(m->err, SL_EINPUT, "%s: holds a %s, not a state_dict (save model.state_dict())", m->what,
                       KIND[m->result.kind]);
    const obj *d = NULL;
    int rc = pick_state_dict(m, &d);
    if (rc) return rc;
    size_t n = d->u.seq.n / 2;
    out->t = calloc(n ? n : 1, sizeof *out->t);
    if (!out->t) return oom(m);
    for (size_t i = 0; i < n; i++) {
        val k = d->u.seq.v[2 * i], v = d->u.seq.v[2 * i + 1];
        if (k.kind != V_STR) return sl_fail(m->err, SL_EINPUT, "%s: entry %zu's key is a %s, not a str", m->what, i, KIND[k.kind]);
        if (v.kind != V_TENSOR)
            return sl_fail(m->err, SL_EINPUT, "%s: '%.200s' is a %s, not a tensor (save model.state_dict() alone)", m->what,
                           k.u.o->u.str.s, KIND[v.kind]);
        const obj *t = v.u.o, *s = t->u.ten.sto;
        if (s->u.sto.dtype == PK_UNREAD_STORAGE)
            return sl_fail(m->err, SL_EINPUT,
                           "%s: tensor '%.200s': storage type %s is not read (float32, float16 and bfloat16 tensors are); "
                           "a buffer the model does not learn (e.g. position_ids) can be left out of the file: "
                           "register_buffer(..., persistent=False), or del the entry before torch.save", m->what, k.u.o->u.str.s,
                           GLOBAL_NAME[s->u.sto.type]);
        pk_tensor *p = &out->t[out->n++];
        p->name = dup_str(k.u.o);
        p->key = dup_str(s->u.sto.key);
        if (!p->name || !p->key) return oom(m);
        p->dtype = s->u.sto.dtype;
        p->storage_numel = s->u.sto.numel;
        p->offset = t->u.ten.offset;
        p->ndim = t->u.ten.ndim;
        memcpy(p->shape, t->u.ten.dims, (size_t)p->ndim * sizeof *p->shape);
        memcpy(p->stride, t->u.ten.dims + p->ndim, (size_t)p->ndim * sizeof *p->stride);
    }
    return SL_OK;
}

int pk_load_state_dict(const unsigned char *bytes, size_t len, const char *what, pk_state_dict *out, sl_error *err)
{
    memset(out, 0, sizeof *out);
    vm m = {.p = bytes, .len = len, .what = what, .err = err};
    int rc = run(&m);
    if (!rc) rc = collect(&m, out);
    if (rc) pk_free(out);
    free(m.stack);
    free(m.memo);
    while (m.arena) {
        chunk *c = m.arena;
        m.arena = c->next;
        free(c);
    }
    return rc;
}

void pk_free(pk_state_dict *sd)
{
    for (int i = 0; i < sd->n; i++) {
        free(sd->t[i].name);
        free(sd->t[i].key);
    }
    free(sd->t);
    memset(sd, 0, sizeof *sd);
}
