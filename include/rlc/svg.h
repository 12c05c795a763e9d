// include/rlc/svg.h: self-contained SVG line plots (learning curves for `rlc repro`): axes with "nice" ticks,
// one polyline per series for the mean, an optional translucent band (e.g. mean +- std over seeds), a title,
// axis labels and a legend. No dependency: the SVG text is written by hand and is well-formed XML (every text
// is escaped). Missing points (NaN) break a line into segments instead of being drawn.
#pragma once

typedef struct rlc_svg_series {
    const char *label; // legend text
    int n;             // points
    const double *x;   // (n) x values, increasing
    const double *y;   // (n) the line (NaN = no point)
    const double *lo;  // (n) lower edge of the band, or NULL for no band (NaN = no band there)
    const double *hi;  // (n) upper edge of the band, or NULL
} rlc_svg_series;

typedef struct rlc_svg_plot {
    const char *title, *xlabel, *ylabel;
    int width, height;  // pixels (0: 440 high, the width from the legend's longest label)
    double ymin, ymax;  // fixed y range; NaN (or ymin >= ymax): from the data (bands included)
} rlc_svg_plot;

// The SVG document (malloc'd, NUL-terminated) of ns series on one pair of axes.
char *rlc_svg_line_plot(const rlc_svg_plot *p, const rlc_svg_series *s, int ns);

// Up to max_ticks "nice" tick values (1, 2 or 5 times a power of ten apart) covering [lo, hi]; returns how many
// were written to ticks and widens [*lo, *hi] to the outer ticks.
int rlc_svg_nice_ticks(double *lo, double *hi, int max_ticks, double *ticks);
