// host/svg.c: SVG line plots with bands (see include/rlc/svg.h). Layout: title on top, the plot area with a
// light grid at the ticks, the legend in a column on the right. Coordinates are written with two decimals.
#include "rlc/svg.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "rlc/strbuf.h"

// Tableau-10: distinguishable, and readable as a band at low opacity.
static const char *const PALETTE[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                      "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
#define N_PALETTE (int)(sizeof PALETTE / sizeof PALETTE[0])

int rlc_svg_nice_ticks(double *lo, double *hi, int max_ticks, double *ticks) {
    if (max_ticks < 2) max_ticks = 2;
    double a = *lo, b = *hi;
    if (!isfinite(a) || !isfinite(b)) a = 0, b = 1;
    if (b < a) {
        double t = a;
        a = b, b = t;
    }
    if (b - a < 1e-12 * (fabs(a) + fabs(b)) || b == a) { // a flat range: open it around the value
        if (a == 0) b = 1; // all zero (e.g. no success yet): show [0, 1], not negative values
        else {
            double pad = fabs(a) * 0.1;
            a -= pad, b += pad;
        }
    }
    static const double NICE[] = {1, 2, 5, 10};
    double raw = (b - a) / (max_ticks - 1);
    double mag = pow(10, floor(log10(raw)));
    int k = 0;
    while (k < 3 && NICE[k] * mag < raw * (1 - 1e-9)) k++;
    for (;;) {
        double step = NICE[k] * mag;
        double t0 = floor(a / step + 1e-9) * step, t1 = ceil(b / step - 1e-9) * step;
        int n = (int)llround((t1 - t0) / step) + 1;
        if (n <= max_ticks) {
            for (int i = 0; i < n; i++) {
                ticks[i] = t0 + i * step;
                if (fabs(ticks[i]) < step * 1e-9) ticks[i] = 0; // no "-0"
            }
            *lo = t0, *hi = t1;
            return n;
        }
        if (++k > 3) k = 1, mag *= 10;
    }
}

// Decimals that show ticks `step` apart exactly.
static int tick_decimals(const double *t, int n) {
    if (n < 2) return 0;
    double step = fabs(t[1] - t[0]);
    int d = (int)ceil(-log10(step) - 1e-9);
    return d < 0 ? 0 : d > 6 ? 6 : d;
}

typedef struct frame {
    double x0, x1, y0, y1;     // data range
    double px0, px1, py0, py1; // pixel box of the plot area (py0 top)
} frame;

static double fx(const frame *f, double x) { return f->px0 + (x - f->x0) / (f->x1 - f->x0) * (f->px1 - f->px0); }
static double fy(const frame *f, double y) {
    double v = f->py1 - (y - f->y0) / (f->y1 - f->y0) * (f->py1 - f->py0);
    return v < f->py0 ? f->py0 : v > f->py1 ? f->py1 : v; // a fixed range clips
}

static int ok(double v) { return isfinite(v); }

// One polyline per run of finite points (a single point becomes a dot).
static void draw_line(rlc_sb *b, const frame *f, const rlc_svg_series *s, const char *color) {
    int i = 0;
    while (i < s->n) {
        while (i < s->n && !(ok(s->x[i]) && ok(s->y[i]))) i++;
        int j = i;
        while (j < s->n && ok(s->x[j]) && ok(s->y[j])) j++;
        if (j - i == 1) {
            rlc_sb_printf(b, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"2.5\" fill=\"%s\"/>\n", fx(f, s->x[i]),
                          fy(f, s->y[i]), color);
        } else if (j - i > 1) {
            rlc_sb_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", color);
            for (int k = i; k < j; k++)
                rlc_sb_printf(b, "%s%.2f,%.2f", k > i ? " " : "", fx(f, s->x[k]), fy(f, s->y[k]));
            rlc_sb_printf(b, "\"/>\n");
        }
        i = j;
    }
}

// One polygon (upper edge forward, lower edge back) per run of points with a finite band.
static void draw_band(rlc_sb *b, const frame *f, const rlc_svg_series *s, const char *color) {
    if (!s->lo || !s->hi) return;
    int i = 0;
    while (i < s->n) {
        while (i < s->n && !(ok(s->x[i]) && ok(s->lo[i]) && ok(s->hi[i]))) i++;
        int j = i;
        while (j < s->n && ok(s->x[j]) && ok(s->lo[j]) && ok(s->hi[j])) j++;
        if (j - i > 1) {
            rlc_sb_printf(b, "<polygon fill=\"%s\" fill-opacity=\"0.18\" stroke=\"none\" points=\"", color);
            for (int k = i; k < j; k++) rlc_sb_printf(b, "%.2f,%.2f ", fx(f, s->x[k]), fy(f, s->hi[k]));
            for (int k = j - 1; k >= i; k--)
                rlc_sb_printf(b, "%.2f,%.2f%s", fx(f, s->x[k]), fy(f, s->lo[k]), k > i ? " " : "");
            rlc_sb_printf(b, "\"/>\n");
        }
        i = j;
    }
}

// Font size (at most `size`) at which text fits `room` pixels.
static double fit_font(double size, const char *text, double room) {
    double w = 0.55 * size * (double)(text ? strlen(text) : 0);
    double fs = w > room ? size * room / w : size;
    return fs < 7 ? 7 : fs;
}

// A band with at least one finite point (one seed has none: no swatch in the legend).
static int has_band(const rlc_svg_series *s) {
    if (!s->lo || !s->hi) return 0;
    for (int i = 0; i < s->n; i++)
        if (ok(s->lo[i]) && ok(s->hi[i])) return 1;
    return 0;
}

char *rlc_svg_line_plot(const rlc_svg_plot *p, const rlc_svg_series *s, int ns) {
    // the legend column is as wide as its longest label (about 7 px per character at 12 px), the plot keeps the rest
    size_t longest = 0;
    for (int k = 0; k < ns; k++)
        if (s[k].label && strlen(s[k].label) > longest) longest = strlen(s[k].label);
    int legend_w = 60 + 7 * (int)longest;
    if (legend_w < 150) legend_w = 150;
    int W = p->width > 0 ? p->width : 560 + legend_w, H = p->height > 0 ? p->height : 440;
    if (H < 100 + 20 * ns) H = 100 + 20 * ns; // room for every legend entry
    frame f = {.px0 = 70, .px1 = W - legend_w, .py0 = 40, .py1 = H - 55};
    if (f.px1 < f.px0 + 200) f.px1 = f.px0 + 200;
    // data ranges (bands included)
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (int k = 0; k < ns; k++)
        for (int i = 0; i < s[k].n; i++) {
            if (!ok(s[k].x[i])) continue;
            const double *v[3] = {s[k].y, s[k].lo, s[k].hi};
            int any = 0;
            for (int c = 0; c < 3; c++)
                if (v[c] && ok(v[c][i])) {
                    any = 1;
                    if (v[c][i] < ymin) ymin = v[c][i];
                    if (v[c][i] > ymax) ymax = v[c][i];
                }
            if (any) {
                if (s[k].x[i] < xmin) xmin = s[k].x[i];
                if (s[k].x[i] > xmax) xmax = s[k].x[i];
            }
        }
    if (ok(p->ymin) && ok(p->ymax) && p->ymin < p->ymax) ymin = p->ymin, ymax = p->ymax;
    double xt[16], yt[16];
    int nxt = rlc_svg_nice_ticks(&xmin, &xmax, 8, xt), nyt = rlc_svg_nice_ticks(&ymin, &ymax, 7, yt);
    f.x0 = xmin, f.x1 = xmax, f.y0 = ymin, f.y1 = ymax;

    rlc_sb b = {0};
    rlc_sb_printf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    rlc_sb_printf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                      "font-family=\"sans-serif\" font-size=\"12\">\n", W, H, W, H);
    rlc_sb_printf(&b, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H);
    // a long title or y label gets a smaller font (a character is about 0.55 em wide) instead of overflowing
    rlc_sb_printf(&b, "<text x=\"%.2f\" y=\"24\" text-anchor=\"middle\" font-size=\"%.1f\">", W / 2.0,
                  fit_font(15, p->title, W - 20));
    rlc_sb_xml(&b, p->title);
    rlc_sb_printf(&b, "</text>\n");
    // grid and tick labels
    int xd = tick_decimals(xt, nxt), yd = tick_decimals(yt, nyt);
    rlc_sb_printf(&b, "<g stroke=\"#e4e4e4\" stroke-width=\"1\">\n");
    for (int i = 0; i < nxt; i++)
        rlc_sb_printf(&b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", fx(&f, xt[i]), f.py0,
                      fx(&f, xt[i]), f.py1);
    for (int i = 0; i < nyt; i++)
        rlc_sb_printf(&b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", f.px0, fy(&f, yt[i]), f.px1,
                      fy(&f, yt[i]));
    rlc_sb_printf(&b, "</g>\n<g fill=\"#333333\">\n");
    for (int i = 0; i < nxt; i++)
        rlc_sb_printf(&b, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">%.*f</text>\n", fx(&f, xt[i]),
                      f.py1 + 17, xd, xt[i]);
    for (int i = 0; i < nyt; i++)
        rlc_sb_printf(&b, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"end\">%.*f</text>\n", f.px0 - 7,
                      fy(&f, yt[i]) + 4, yd, yt[i]);
    rlc_sb_printf(&b, "</g>\n");
    // data: bands under lines
    for (int k = 0; k < ns; k++) draw_band(&b, &f, &s[k], PALETTE[k % N_PALETTE]);
    for (int k = 0; k < ns; k++) draw_line(&b, &f, &s[k], PALETTE[k % N_PALETTE]);
    // axes box and labels
    rlc_sb_printf(&b, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"none\" stroke=\"#333333\"/>\n",
                  f.px0, f.py0, f.px1 - f.px0, f.py1 - f.py0);
    rlc_sb_printf(&b, "<text x=\"%.2f\" y=\"%d\" text-anchor=\"middle\">", (f.px0 + f.px1) / 2, H - 14);
    rlc_sb_xml(&b, p->xlabel);
    rlc_sb_printf(&b, "</text>\n<text x=\"18\" y=\"%.2f\" text-anchor=\"middle\" font-size=\"%.1f\" "
                      "transform=\"rotate(-90 18 %.2f)\">",
                  (f.py0 + f.py1) / 2, fit_font(12, p->ylabel, f.py1 - f.py0), (f.py0 + f.py1) / 2);
    rlc_sb_xml(&b, p->ylabel);
    rlc_sb_printf(&b, "</text>\n");
    // legend
    rlc_sb_printf(&b, "<g font-size=\"12\">\n");
    for (int k = 0; k < ns; k++) {
        double y = f.py0 + 10 + 20 * k, x = f.px1 + 16;
        const char *c = PALETTE[k % N_PALETTE];
        if (has_band(&s[k]))
            rlc_sb_printf(&b, "<rect x=\"%.2f\" y=\"%.2f\" width=\"24\" height=\"10\" fill=\"%s\" "
                              "fill-opacity=\"0.18\"/>\n",
                          x, y - 5, c);
        rlc_sb_printf(&b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" "
                          "stroke-width=\"2\"/>\n", x,
                      y, x + 24, y, c);
        rlc_sb_printf(&b, "<text x=\"%.2f\" y=\"%.2f\">", x + 30, y + 4);
        rlc_sb_xml(&b, s[k].label);
        rlc_sb_printf(&b, "</text>\n");
    }
    rlc_sb_printf(&b, "</g>\n</svg>\n");
    return rlc_sb_take(&b);
}
