/* Drawing the synthetic categories and their defects (see synthetic.h).
 *
 * An image is drawn on a float canvas in [0, 1] together with a background
 * canvas (what a missing part reveals) and a support map (the object, or the
 * mesh lines; everything for full textures). A defect is first rasterized
 * into its own binary layer, intersected with the support when it must stay
 * on the object, then painted; the painted pixels are exactly the mask.
 * Sensor noise is added last, everywhere, so it is not a defect. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/synthetic.h"
#include "tensor/rng.h"

typedef enum { D_SCRATCH, D_SPOT, D_CRACK, D_HOLE, D_STAIN, D_MISSING } DefectKind;

typedef struct Canvas {
    int size, ch;     /* ch 1 (grey) or 3 (RGB) */
    float *pix, *bg;  /* size * size * ch */
    uint8_t *support; /* size * size */
} Canvas;

/* Draws one normal image; false when out of memory. */
typedef bool (*RenderFn)(Canvas *cv, Rng *r);

typedef struct Category {
    const char *name;
    int channels;
    RenderFn render;
    bool object; /* defects are placed on the object and clipped to it */
    const char *defect_names[3];
    DefectKind defect_kinds[3];
} Category;

/* ------------------------------------------------------------------ helpers */

static double uniform(Rng *r, double lo, double hi) {
    return lo + (hi - lo) * rng_uniform64(r);
}

static double clamp01(double v) {
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

static double luma(const double c[3]) {
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
}

/* Writes colour c at pixel i (grey canvases take its luma). */
static void put(const Canvas *cv, float *buf, int i, const double c[3]) {
    if (cv->ch == 1)
        buf[i] = (float)luma(c);
    else
        for (int k = 0; k < 3; k++) buf[i * 3 + k] = (float)c[k];
}

static double pixel_luma(const Canvas *cv, int i) {
    if (cv->ch == 1) return cv->pix[i];
    double c[3] = {cv->pix[i * 3], cv->pix[i * 3 + 1], cv->pix[i * 3 + 2]};
    return luma(c);
}

/* Colour jitter: each channel scaled by 1 +- amount, plus a common gain. */
static void jitter(Rng *r, double c[3], double amount, double gain) {
    for (int k = 0; k < 3; k++) c[k] = clamp01(c[k] * gain * uniform(r, 1 - amount, 1 + amount));
}

/* ----------------------------------------------------------------- textures */

static bool render_weave(Canvas *cv, Rng *r) {
    int n = cv->size;
    double period = n / 14.0, theta = uniform(r, -0.07, 0.07);
    double ox = uniform(r, 0, 2 * period), oy = uniform(r, 0, 2 * period);
    double gain = uniform(r, 0.94, 1.06);
    double warp[3] = {0.80, 0.66, 0.46}, weft[3] = {0.58, 0.44, 0.30};
    jitter(r, warp, 0.03, gain);
    jitter(r, weft, 0.03, gain);
    double cs = cos(theta), sn = sin(theta), c0 = n / 2.0;
    for (int y = 0; y < n; y++)
        for (int x = 0; x < n; x++) {
            double dx = x + 0.5 - c0, dy = y + 0.5 - c0;
            double u = (dx * cs + dy * sn + ox) / period, v = (-dx * sn + dy * cs + oy) / period;
            double iu = floor(u), iv = floor(v), fu = u - iu, fv = v - iv;
            /* over-under: in alternate cells the warp (along u) or the weft is on top,
             * each thread rounded across its width */
            bool warp_top = ((long)iu + (long)iv) % 2 == 0;
            double shade = 0.5 + 0.5 * sin(M_PI * (warp_top ? fv : fu));
            const double *base = warp_top ? warp : weft;
            double c[3] = {base[0] * shade, base[1] * shade, base[2] * shade};
            put(cv, cv->pix, y * n + x, c);
        }
    return true;
}

static bool render_mesh(Canvas *cv, Rng *r) {
    int n = cv->size;
    double period = n / 9.0, half_width = fmax(0.7, n / 110.0), theta = uniform(r, -0.05, 0.05);
    double ox = uniform(r, 0, period), oy = uniform(r, 0, period);
    double ground = uniform(r, 0.72, 0.80), line = uniform(r, 0.18, 0.26);
    double tilt_x = uniform(r, -0.06, 0.06), tilt_y = uniform(r, -0.06, 0.06);
    double cs = cos(theta), sn = sin(theta), c0 = n / 2.0;
    for (int y = 0; y < n; y++)
        for (int x = 0; x < n; x++) {
            int i = y * n + x;
            double dx = x + 0.5 - c0, dy = y + 0.5 - c0;
            double u = dx * cs + dy * sn + ox, v = -dx * sn + dy * cs + oy;
            double du = fabs(u - period * floor(u / period + 0.5));
            double dv = fabs(v - period * floor(v / period + 0.5));
            double g = ground + tilt_x * dx / n + tilt_y * dy / n;
            cv->bg[i] = (float)g;
            bool on_line = du <= half_width || dv <= half_width; /* hard edges: exact support */
            cv->support[i] = on_line;
            cv->pix[i] = (float)(on_line ? line : g);
        }
    return true;
}

/* Smooth value noise: random values on a lattice of `cell` pixels, blended
 * with the smoothstep weight; in [0, 1]. */
static bool add_value_noise(double *field, int n, double cell, double weight, Rng *r) {
    int g = (int)ceil(n / cell) + 2;
    double *lattice = malloc(sizeof(double) * (size_t)g * (size_t)g);
    if (!lattice) return false;
    for (int k = 0; k < g * g; k++) lattice[k] = rng_uniform64(r);
    for (int y = 0; y < n; y++)
        for (int x = 0; x < n; x++) {
            double gx = (x + 0.5) / cell, gy = (y + 0.5) / cell;
            int ix = (int)gx, iy = (int)gy;
            double fx = gx - ix, fy = gy - iy;
            fx = fx * fx * (3 - 2 * fx);
            fy = fy * fy * (3 - 2 * fy);
            const double *row0 = lattice + iy * g, *row1 = row0 + g;
            double top = row0[ix] + (row0[ix + 1] - row0[ix]) * fx;
            double bottom = row1[ix] + (row1[ix + 1] - row1[ix]) * fx;
            field[y * n + x] += weight * (top + (bottom - top) * fy);
        }
    free(lattice);
    return true;
}

static bool render_granite(Canvas *cv, Rng *r) {
    int n = cv->size;
    double *field = calloc((size_t)n * (size_t)n, sizeof(double));
    if (!field) return false;
    double light[3] = {0.66, 0.62, 0.58}, dark[3] = {0.28, 0.26, 0.30};
    double gain = uniform(r, 0.94, 1.06);
    jitter(r, light, 0.03, gain);
    jitter(r, dark, 0.03, gain);
    /* three octaves: blotches, grains, speckles */
    bool ok = add_value_noise(field, n, n / 5.0, 0.45, r) &&
              add_value_noise(field, n, n / 16.0, 0.35, r) &&
              add_value_noise(field, n, n / 48.0, 0.20, r);
    for (int i = 0; i < n * n; i++) {
        double t = clamp01((field[i] - 0.5) * 1.8 + 0.5);
        double c[3];
        for (int k = 0; k < 3; k++) c[k] = dark[k] + (light[k] - dark[k]) * t;
        put(cv, cv->pix, i, c);
    }
    free(field);
    return ok;
}

/* ------------------------------------------------------------------ objects */

static bool render_disc(Canvas *cv, Rng *r) {
    int n = cv->size;
    double cx = n * uniform(r, 0.46, 0.54), cy = n * uniform(r, 0.46, 0.54);
    double r_out = n * 0.40 * uniform(r, 0.98, 1.02), r_in = n * 0.24 * uniform(r, 0.98, 1.02);
    double highlight = uniform(r, 0, 2 * M_PI), gain = uniform(r, 0.93, 1.07);
    double back = 0.10 * gain;
    double glass[3] = {0.36, 0.56, 0.40}, floor_c[3] = {0.62, 0.66, 0.52};
    jitter(r, glass, 0.04, gain);
    jitter(r, floor_c, 0.04, gain);
    for (int y = 0; y < n; y++)
        for (int x = 0; x < n; x++) {
            int i = y * n + x;
            double dx = x + 0.5 - cx, dy = y + 0.5 - cy, d = hypot(dx, dy);
            double vignette = 1 - 0.25 * (hypot(x + 0.5 - n / 2.0, y + 0.5 - n / 2.0) / n);
            double b[3] = {back * vignette, back * vignette, back * vignette};
            put(cv, cv->bg, i, b);
            cv->support[i] = d < r_out;
            double c[3];
            if (d >= r_out) {
                memcpy(c, b, sizeof c);
            } else if (d >= r_in) { /* the rim: rounded profile plus a highlight */
                double t = (d - r_in) / (r_out - r_in);
                double shade = 0.55 + 0.45 * sin(M_PI * t);
                double da = remainder(atan2(dy, dx) - highlight, 2 * M_PI);
                double spec = 0.35 * exp(-da * da / 0.08) * sin(M_PI * t);
                for (int k = 0; k < 3; k++) c[k] = clamp01(glass[k] * shade + spec);
            } else { /* the bottom, brighter towards the centre */
                double s = 0.75 + 0.25 * (1 - d / r_in);
                for (int k = 0; k < 3; k++) c[k] = floor_c[k] * s;
            }
            put(cv, cv->pix, i, c);
        }
    return true;
}

static bool render_screw(Canvas *cv, Rng *r) {
    int n = cv->size;
    double cx = n * uniform(r, 0.42, 0.58), cy = n * uniform(r, 0.42, 0.58);
    double angle = uniform(r, 0, 2 * M_PI), ax = cos(angle), ay = sin(angle);
    double back = uniform(r, 0.78, 0.86), metal = uniform(r, 0.30, 0.40);
    double shadow_x = uniform(r, -0.05, 0.05), shadow_y = uniform(r, -0.05, 0.05);
    double body_start = -0.20 * n, tip_start = 0.18 * n, tip_end = 0.30 * n;
    double half_width = 0.05 * n, head_at = -0.25 * n, head_r = 0.085 * n;
    double pitch = 0.035 * n, slot_half = fmax(0.6, 0.012 * n);
    for (int y = 0; y < n; y++)
        for (int x = 0; x < n; x++) {
            int i = y * n + x;
            double dx = x + 0.5 - cx, dy = y + 0.5 - cy;
            double t = dx * ax + dy * ay, s = -dx * ay + dy * ax; /* along / across the axis */
            double g = back + shadow_x * (x - n / 2.0) / n + shadow_y * (y - n / 2.0) / n;
            cv->bg[i] = (float)g;
            double w =
                t < tip_start ? half_width : half_width * (tip_end - t) / (tip_end - tip_start);
            bool body = t >= body_start && t <= tip_end && fabs(s) <= w;
            double dh = hypot(t - head_at, s);
            bool head = dh <= head_r;
            cv->support[i] = body || head;
            double v = g;
            if (head) {
                v = metal + 0.12 * (1 - dh / head_r);
                if (fabs(t - head_at) <= slot_half && fabs(s) <= 0.7 * head_r) v = 0.12;
            } else if (body) {
                double thread = 0.5 + 0.5 * sin(2 * M_PI * t / pitch);
                double round = 1 - (s / half_width) * (s / half_width);
                v = metal - 0.10 * thread + 0.15 * round;
            }
            cv->pix[i] = (float)v;
        }
    return true;
}

static const Category CATEGORIES[] = {
    {"weave", 3, render_weave, false, {"hole", "stain", "scratch"}, {D_HOLE, D_STAIN, D_SCRATCH}},
    {"mesh", 1, render_mesh, false, {"missing", "spot", "crack"}, {D_MISSING, D_SPOT, D_CRACK}},
    {"granite", 3, render_granite, false, {"crack", "stain", "spot"}, {D_CRACK, D_STAIN, D_SPOT}},
    {"disc",
     3,
     render_disc,
     true,
     {"broken", "contamination", "scratch"},
     {D_MISSING, D_SPOT, D_SCRATCH}},
    {"screw",
     1,
     render_screw,
     true,
     {"missing", "scratch", "spot"},
     {D_MISSING, D_SCRATCH, D_SPOT}},
};
#define N_CATEGORIES ((int)(sizeof CATEGORIES / sizeof CATEGORIES[0]))

/* The names again, as the array synthetic_category_names() hands out (same order). */
static const char *const CATEGORY_NAMES[N_CATEGORIES] = {"weave", "mesh", "granite", "disc",
                                                         "screw"};

int synthetic_category_names(const char *const **names) {
    *names = CATEGORY_NAMES;
    return N_CATEGORIES;
}

int synthetic_defect_names(int category, const char *const **names) {
    if (category < 0 || category >= N_CATEGORIES) {
        *names = NULL;
        return 0;
    }
    *names = CATEGORIES[category].defect_names;
    return 3;
}

/* ----------------------------------------------------------------- defects */

/* Marks the pixels whose centre lies within `radius` of (px, py), and the
 * pixel containing the point, so thin strokes stay connected. */
static void stamp(uint8_t *layer, int n, double px, double py, double radius) {
    int x0 = (int)floor(px - radius - 1), x1 = (int)ceil(px + radius + 1);
    int y0 = (int)floor(py - radius - 1), y1 = (int)ceil(py + radius + 1);
    for (int y = y0 < 0 ? 0 : y0; y <= y1 && y < n; y++)
        for (int x = x0 < 0 ? 0 : x0; x <= x1 && x < n; x++) {
            double dx = x + 0.5 - px, dy = y + 0.5 - py;
            if (dx * dx + dy * dy <= radius * radius) layer[y * n + x] = 1;
        }
    int ix = (int)floor(px), iy = (int)floor(py);
    if (ix >= 0 && ix < n && iy >= 0 && iy < n) layer[iy * n + ix] = 1;
}

/* A polyline of `segments` pieces of `step` pixels, turning by N(0, turn) each. */
static void stroke(uint8_t *layer, int n, Rng *r, double x, double y, double dir, int segments,
                   double step, double turn, double radius) {
    for (int s = 0; s < segments; s++) {
        dir += turn * rng_normal(r);
        double nx = x + step * cos(dir), ny = y + step * sin(dir);
        int samples = (int)ceil(step * 4) + 1;
        for (int k = 0; k <= samples; k++) {
            double t = (double)k / samples;
            stamp(layer, n, x + (nx - x) * t, y + (ny - y) * t, radius);
        }
        x = nx;
        y = ny;
    }
}

static void ellipse(uint8_t *layer, int n, double cx, double cy, double ra, double rb,
                    double angle) {
    double ca = cos(angle), sa = sin(angle), big = fmax(ra, rb) + 1;
    for (int y = (int)fmax(0, cy - big); y < n && y <= cy + big; y++)
        for (int x = (int)fmax(0, cx - big); x < n && x <= cx + big; x++) {
            double dx = x + 0.5 - cx, dy = y + 0.5 - cy;
            double u = (dx * ca + dy * sa) / ra, v = (-dx * sa + dy * ca) / rb;
            if (u * u + v * v <= 1) layer[y * n + x] = 1;
        }
}

/* A random anchor for a defect: a support pixel (objects, mesh) or any pixel,
 * away from the image border. */
static void anchor(const Canvas *cv, bool on_support, Rng *r, double *x, double *y) {
    int n = cv->size, lo = n / 10, hi = n - n / 10, count = 0;
    *x = *y = n / 2.0;
    for (int py = lo; py < hi; py++)
        for (int px = lo; px < hi; px++) count += !on_support || cv->support[py * n + px];
    if (count == 0) return; /* cannot happen with the shapes above: the centre */
    int pick = (int)rng_below(r, (uint64_t)count);
    for (int py = lo; py < hi; py++)
        for (int px = lo; px < hi; px++)
            if ((!on_support || cv->support[py * n + px]) && pick-- == 0) {
                *x = px + rng_uniform64(r);
                *y = py + rng_uniform64(r);
                return;
            }
}

/* Mean luma under the layer: decides between a dark and a bright mark. */
static double mean_under(const Canvas *cv, const uint8_t *layer) {
    double sum = 0;
    int cnt = 0;
    for (int i = 0; i < cv->size * cv->size; i++)
        if (layer[i]) {
            sum += pixel_luma(cv, i);
            cnt++;
        }
    return cnt ? sum / cnt : 0.5;
}

/* Draws one defect of `kind` into `layer` (cleared first) and paints it. On
 * objects every defect stays on the object; a missing part always removes
 * support (object or mesh lines) and nothing else. */
static void draw_defect(Canvas *cv, DefectKind kind, bool object, Rng *r, uint8_t *layer) {
    int n = cv->size, npix = n * n;
    bool on_support = object || kind == D_MISSING;
    memset(layer, 0, (size_t)npix);
    double x, y;
    anchor(cv, on_support, r, &x, &y);
    double dir = uniform(r, 0, 2 * M_PI);
    switch (kind) {
    case D_SCRATCH:
        stroke(layer, n, r, x, y, dir, 4, n * uniform(r, 0.05, 0.09), 0.25, fmax(0.7, n / 150.0));
        break;
    case D_CRACK: {
        int steps = (int)(n * uniform(r, 0.25, 0.40));
        double radius = fmax(0.55, n / 250.0);
        stroke(layer, n, r, x, y, dir, steps, 1.0, 0.35, radius);
        stroke(layer, n, r, x, y, dir + M_PI + uniform(r, -0.6, 0.6), steps / 2, 1.0, 0.35, radius);
        break;
    }
    case D_SPOT:
        ellipse(layer, n, x, y, n * uniform(r, 0.025, 0.05), n * uniform(r, 0.02, 0.04), dir);
        break;
    case D_HOLE:
        ellipse(layer, n, x, y, n * uniform(r, 0.04, 0.075), n * uniform(r, 0.035, 0.07), dir);
        break;
    case D_STAIN: {
        double r0 = n * uniform(r, 0.04, 0.07);
        int blobs = 4 + (int)rng_below(r, 4);
        for (int b = 0; b < blobs; b++)
            ellipse(layer, n, x + 0.6 * r0 * rng_normal(r), y + 0.6 * r0 * rng_normal(r),
                    r0 * uniform(r, 0.5, 1.0), r0 * uniform(r, 0.5, 1.0), uniform(r, 0, M_PI));
        break;
    }
    case D_MISSING:
        ellipse(layer, n, x, y, n * uniform(r, 0.07, 0.12), n * uniform(r, 0.07, 0.12), dir);
        break;
    }
    if (on_support)
        for (int i = 0; i < npix; i++) layer[i] &= cv->support[i];

    /* Paint. Colours contrast with what they cover so the defect is visible. */
    double under = mean_under(cv, layer);
    double mark = under < 0.5 ? 0.92 : 0.08;
    static const double palette[3][3] = {
        {0.55, 0.25, 0.08}, {0.06, 0.06, 0.07}, {0.95, 0.90, 0.62}};
    int pc = 0;
    for (int k = 1; k < 3; k++)
        if (fabs(luma(palette[k]) - under) > fabs(luma(palette[pc]) - under)) pc = k;
    if (fabs(luma(palette[pc]) - under) > 0.3) /* among good contrasts, a random one */
        for (int tries = 0; tries < 4; tries++) {
            int k = (int)rng_below(r, 3);
            if (fabs(luma(palette[k]) - under) > 0.3) {
                pc = k;
                break;
            }
        }
    double tint[3] = {0.36, 0.22, 0.08};
    if (under < 0.4)
        tint[0] = 0.85, tint[1] = 0.80, tint[2] = 0.55; /* light stains on dark ground */
    for (int i = 0; i < npix; i++) {
        if (!layer[i]) continue;
        for (int k = 0; k < cv->ch; k++) {
            float *p = &cv->pix[i * cv->ch + k];
            double v = *p;
            double pal = cv->ch == 1 ? luma(palette[pc]) : palette[pc][k];
            double tk = cv->ch == 1 ? luma(tint) : tint[k];
            switch (kind) {
            case D_SCRATCH:
                v = 0.15 * v + 0.85 * mark;
                break;
            case D_CRACK:
                v = under < 0.3 ? 0.15 * v + 0.85 * 0.9 : 0.15 * v;
                break;
            case D_SPOT:
                v = pal;
                break;
            case D_HOLE:
                v = under < 0.3 ? 0.9 : 0.03;
                break;
            case D_STAIN:
                v = 0.3 * v + 0.7 * tk;
                break;
            case D_MISSING:
                v = cv->bg[i * cv->ch + k];
                break;
            }
            *p = (float)v;
        }
    }
}

/* ------------------------------------------------------------------- public */

static uint8_t to8(double v) {
    return (uint8_t)floor(clamp01(v) * 255.0 + 0.5);
}

hg_status synthetic_render(int category, int defect, int size, uint64_t seed, Image **image,
                           Image **mask) {
    *image = NULL;
    if (mask) *mask = NULL;
    if (category < 0 || category >= N_CATEGORIES)
        return hg_fail(HG_ERR_ARG, "synthetic: category %d out of range [0, %d)", category,
                       N_CATEGORIES);
    if (defect < -1 || defect >= 3)
        return hg_fail(HG_ERR_ARG, "synthetic: defect %d out of range [-1, 3)", defect);
    if (size < 32 || size > 4096)
        return hg_fail(HG_ERR_ARG, "synthetic: image size %d outside [32, 4096]", size);
    const Category *cat = &CATEGORIES[category];
    size_t npix = (size_t)size * (size_t)size;
    Canvas cv = {.size = size, .ch = cat->channels};
    cv.pix = calloc(npix * (size_t)cv.ch, sizeof(float));
    cv.bg = calloc(npix * (size_t)cv.ch, sizeof(float));
    cv.support = malloc(npix);
    uint8_t *layer = calloc(npix, 1);
    Image *img = image_new(size, size, cv.ch, 8), *msk = image_new(size, size, 1, 8);
    hg_status st = HG_OK;
    if (!cv.pix || !cv.bg || !cv.support || !layer || !img || !msk) {
        st = hg_fail(HG_ERR_NOMEM, "synthetic: out of memory for a %dx%d image", size, size);
        goto done;
    }
    memset(cv.support, 1, npix);
    Rng r = rng_new(seed);
    if (!cat->render(&cv, &r)) {
        st = hg_fail(HG_ERR_NOMEM, "synthetic: out of memory drawing %s", cat->name);
        goto done;
    }
    if (defect >= 0) {
        /* Redraw (with the next random numbers) until the defect covers a few
         * pixels: a stroke may leave the support almost at once. */
        size_t min_pixels = npix / 4000 > 6 ? npix / 4000 : 6, count = 0;
        float *clean = malloc(sizeof(float) * npix * (size_t)cv.ch);
        if (!clean) {
            st = hg_fail(HG_ERR_NOMEM, "synthetic: out of memory");
            goto done;
        }
        memcpy(clean, cv.pix, sizeof(float) * npix * (size_t)cv.ch);
        for (int attempt = 0; attempt < 50 && count < min_pixels; attempt++) {
            memcpy(cv.pix, clean, sizeof(float) * npix * (size_t)cv.ch);
            draw_defect(&cv, cat->defect_kinds[defect], cat->object, &r, layer);
            count = 0;
            for (size_t i = 0; i < npix; i++) count += layer[i];
        }
        free(clean);
        if (count < min_pixels) {
            st = hg_fail(HG_ERR_CHECK, "synthetic: could not place a %s defect on %s",
                         cat->defect_names[defect], cat->name);
            goto done;
        }
    }
    /* Sensor noise, then 8 bits. */
    float *noise = malloc(sizeof(float) * npix * (size_t)cv.ch);
    if (!noise) {
        st = hg_fail(HG_ERR_NOMEM, "synthetic: out of memory");
        goto done;
    }
    rng_fill_normal(&r, noise, (int64_t)(npix * (size_t)cv.ch), 0.0f, 0.012f);
    for (size_t i = 0; i < npix * (size_t)cv.ch; i++) img->data8[i] = to8(cv.pix[i] + noise[i]);
    free(noise);
    for (size_t i = 0; i < npix; i++) msk->data8[i] = defect >= 0 && layer[i] ? 255 : 0;
done:
    free(cv.pix);
    free(cv.bg);
    free(cv.support);
    free(layer);
    if (st != HG_OK) {
        image_free(img);
        image_free(msk);
        return st;
    }
    *image = img;
    if (mask)
        *mask = msk;
    else
        image_free(msk);
    return HG_OK;
}
