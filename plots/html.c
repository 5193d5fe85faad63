#include "plots/html.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void sl_html_text(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

void sl_html_printf(FILE *f, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    sl_html_text(f, buf);
}

void sl_html_num(FILE *f, double v)
{
    if (!isfinite(v)) fputs("&ndash;", f);
    else if (v != 0 && fabs(v) < 1e-3) fprintf(f, "%.2e", v);
    else fprintf(f, "%.4g", v);
}

int sl_html_png(FILE *f, const char *path, const char *alt, sl_error *err)
{
    static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    FILE *in = fopen(path, "rb");
    if (!in) return sl_fail(err, SL_ERUNTIME, "%s: cannot open: %s", path, strerror(errno));
    fputs("<img alt=\"", f);
    sl_html_text(f, alt);
    fputs("\" src=\"data:image/png;base64,", f);
    unsigned char b[3 * 1024];
    size_t n;
    /* whole 3-byte groups per read, so only the file's last read pads */
    while ((n = fread(b, 1, sizeof b, in)) > 0) {
        for (size_t i = 0; i < n; i += 3) {
            unsigned v = (unsigned)b[i] << 16 | (i + 1 < n ? (unsigned)b[i + 1] << 8 : 0) | (i + 2 < n ? b[i + 2] : 0);
            fputc(B64[v >> 18 & 63], f);
            fputc(B64[v >> 12 & 63], f);
            fputc(i + 1 < n ? B64[v >> 6 & 63] : '=', f);
            fputc(i + 2 < n ? B64[v & 63] : '=', f);
        }
    }
    int bad = ferror(in);
    fclose(in);
    fputs("\">", f);
    return bad ? sl_fail(err, SL_ERUNTIME, "%s: read failed", path) : SL_OK;
}

/* key: value rows of an object; a nested object becomes a nested table,
 * an array of scalars a comma-separated list. */
void sl_html_object(FILE *f, const cJSON *obj)
{
    const cJSON *v, *e;
    fputs("<table>", f);
    cJSON_ArrayForEach(v, obj)
    {
        fputs("<tr><th>", f);
        sl_html_text(f, v->string);
        fputs("</th><td>", f);
        if (cJSON_IsString(v)) sl_html_text(f, v->valuestring);
        else if (cJSON_IsNumber(v)) fprintf(f, "%.10g", v->valuedouble);
        else if (cJSON_IsObject(v)) sl_html_object(f, v);
        else if (cJSON_IsArray(v) && !(v->child && (cJSON_IsObject(v->child) || cJSON_IsArray(v->child)))) {
            cJSON_ArrayForEach(e, v)
            {
                if (e != v->child) fputs(", ", f);
                if (cJSON_IsString(e)) sl_html_text(f, e->valuestring);
                else if (cJSON_IsNumber(e)) fprintf(f, "%.10g", e->valuedouble);
                else fputs(cJSON_IsNull(e) ? "null" : cJSON_IsTrue(e) ? "true" : "false", f);
            }
        } else {
            char *s = cJSON_PrintUnformatted(v);
            sl_html_text(f, s);
            free(s);
        }
        fputs("</td></tr>\n", f);
    }
    fputs("</table>\n", f);
}
