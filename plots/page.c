#include "plots/page.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "plots/gnuplot.h"
#include "plots/html.h"

static const char STYLE[] =
    "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;max-width:60rem;margin:2rem auto;"
    "padding:0 1rem;color:#222;line-height:1.45}\n"
    "h1{font-size:1.6rem;margin-bottom:0.2rem}h2{border-bottom:1px solid #ccc;padding-bottom:0.2rem;margin-top:2.2rem}\n"
    ".sub{color:#555;margin-top:0}.what{color:#555}\n"
    ".verdict{background:#eef4fb;border-left:4px solid #4477aa;padding:0.5rem 0.8rem;font-weight:500}\n"
    ".warn{background:#fff4e5;border-left:4px solid #e08a00;padding:0.5rem 0.8rem}\n"
    "ul.glance li{margin:0.3rem 0}\n"
    "table{border-collapse:collapse;margin:0.8rem 0;font-size:0.9rem}\n"
    "th,td{border:1px solid #ddd;padding:0.2rem 0.6rem;text-align:left;vertical-align:top}th{background:#f4f4f4}\n"
    "td table{margin:0}td.num{text-align:right;font-variant-numeric:tabular-nums}\n"
    "figure{margin:1rem 0}figure img{max-width:100%;height:auto;border:1px solid #eee}\n"
    "figcaption{color:#555;font-size:0.9rem}code{font-size:0.85rem;overflow-wrap:anywhere}\n";

/* Lets a headless browser (tests/test_report_browser.sh) confirm that every
 * embedded figure decoded: body gets data-figures="LOADED/TOTAL". */
static const char FIGURE_CHECK[] =
    "<script>window.addEventListener('load',function(){var im=document.images,ok=0;"
    "for(var i=0;i<im.length;i++)if(im[i].complete&&im[i].naturalWidth>0)ok++;"
    "document.body.setAttribute('data-figures',ok+'/'+im.length);});</script>\n";

void sl_page_warn(sl_page *p, const char *msg)
{
    if (!p->info->warning[0]) snprintf(p->info->warning, sizeof p->info->warning, "%s", msg);
}

int sl_page_open(sl_page *p, const char *dir, const char *file, const char *title, const char *subtitle,
                 sl_report_info *info, sl_error *err)
{
    memset(p, 0, sizeof *p);
    p->info = info;
    snprintf(p->figdir, sizeof p->figdir, "%s/figures", dir);
    p->have_gnuplot = !sl_gnuplot_find(p->gnuplot, sizeof p->gnuplot);
    if (!p->have_gnuplot) {
        info->gnuplot_missing = 1;
        sl_page_warn(p, "gnuplot not found: figures skipped (install gnuplot-nox); tables and verdicts written");
    } else if (mkdir(p->figdir, 0777) && errno != EEXIST) {
        return sl_fail(err, SL_ERUNTIME, "%s: cannot create: %s", p->figdir, strerror(errno));
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int rc = sl_atomic_open(&p->out, path, err);
    if (rc) return rc;
    FILE *f = p->f = p->out.f;
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>", f);
    sl_html_text(f, title);
    fputs(": ", f);
    sl_html_text(f, subtitle);
    fprintf(f, "</title>\n<style>\n%s</style></head>\n<body>\n<h1>", STYLE);
    sl_html_text(f, title);
    fputs("</h1>\n<p class=\"sub\">", f);
    sl_html_text(f, subtitle);
    time_t now = time(NULL);
    char when[64];
    strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    fprintf(f, " &middot; written %s</p>\n", when);
    if (!p->have_gnuplot)
        fputs("<p class=\"warn\">Figures were skipped: gnuplot was not found. Install it (Debian: gnuplot-nox) and "
              "write this page again.</p>\n",
              f);
    return SL_OK;
}

FILE *sl_page_figure(sl_page *p)
{
    p->body = NULL;
    p->gp = open_memstream(&p->body, &p->body_size);
    return p->gp;
}

int sl_page_figure_done(sl_page *p, int drawn, const char *name, const char *caption, int w, int h, sl_error *err)
{
    int rc = SL_OK;
    if (p->gp) fclose(p->gp);
    p->gp = NULL;
    if (drawn && p->have_gnuplot && p->body) {
        sl_error ferr = {0};
        if (sl_gnuplot_render(p->gnuplot, p->figdir, name, p->body, w, h, &ferr)) {
            p->info->figure_failures++;
            sl_page_warn(p, ferr.msg);
            fputs("<p class=\"warn\">This figure could not be drawn: ", p->f);
            sl_html_text(p->f, ferr.msg);
            fputs("</p>\n", p->f);
        } else {
            char png[4200];
            snprintf(png, sizeof png, "%s/%s.png", p->figdir, name);
            fputs("<figure>", p->f);
            rc = sl_html_png(p->f, png, caption, err);
            fputs("<figcaption>", p->f);
            sl_html_text(p->f, caption);
            fprintf(p->f, " <a href=\"figures/%s.svg\">SVG</a> &middot; <a href=\"figures/%s.gp\">gnuplot script</a>"
                          "</figcaption></figure>\n",
                    name, name);
            p->info->figures++;
        }
    }
    free(p->body);
    p->body = NULL;
    return rc;
}

void sl_page_section(sl_page *p, const char *id, const char *heading, const char *what)
{
    fprintf(p->f, "<section id=\"%s\">\n<h2>", id);
    sl_html_text(p->f, heading);
    fputs("</h2>\n<p class=\"what\">", p->f);
    sl_html_text(p->f, what);
    fputs("</p>\n", p->f);
}

void sl_page_verdict(sl_page *p, const char *text)
{
    if (!text[0]) return;
    fputs("<p class=\"verdict\">", p->f);
    sl_html_text(p->f, text);
    fputs("</p>\n", p->f);
}

int sl_page_close(sl_page *p, int rc, sl_error *err)
{
    fprintf(p->f, "%s</body></html>\n", FIGURE_CHECK);
    if (rc) {
        sl_atomic_abort(&p->out);
        return rc;
    }
    return sl_atomic_commit(&p->out, err);
}
