/*
 * infocam._maxbox: wsolevaluation's MaxBoxAccV2 best IoU at every CAM threshold, per image,
 * without tracing a contour.
 *
 * For the quantised map q = (uint8)(map * 255) and a cut c, wsolevaluation keeps q > c and
 * boxes every contour of cv2.findContours(RETR_TREE). Those contours are exactly
 *   (a) one outer contour per 8-connected foreground component: its boundingRect is the
 *       component's bounding box;
 *   (b) one hole contour per 4-connected background component that does not touch the image
 *       border (outside the image is background): its boundingRect is the hole's bounding
 *       box grown by one pixel on each side.
 * (tests/test_maxbox_compiled.py checks the box sets against cv2.) Only the distinct cuts
 * int(tau * max(q)) are computed, at most 256. The boxes are scored against the ground truth
 * with wsolevaluation's IoU (int64 arithmetic, +1 areas, double ratio, 0 when the union is
 * <= 0), so the result is bit-identical to its numpy code. Two methods, same results:
 *
 * Row runs (the default for smooth maps; see "row runs" below): one pass over the rows finds,
 * for every row, the cuts where its mask is more than one run. At cuts where no row is, there
 * are no holes and the components are stretches of rows, found in O(rows) per cut; at the
 * others, runs of consecutive one-run rows are still taken whole, and only the rows with
 * several runs are labelled run by run.
 *
 * Pixel sweeps (maps with many multi-run cuts, i.e. noise): foreground components only grow
 * as c descends and background components only grow as c ascends, so two union-find sweeps
 * over the pixels sorted by value (a counting sort) give the components at every cut; each
 * root's record carries its box. When a pixel joins, its present neighbours fall into groups
 * already connected inside the 3 x 3 window; a 512-entry table gives one representative per
 * group (one find per pixel, usually) and the change in the Euler number (components -
 * holes, from Gray's 2 x 2 bit-quad counts), so the foreground sweep knows which cuts have
 * holes and the background sweep runs only up to the last of them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* ----------------------------------------------------------------- 3 x 3 neighbourhoods */

/* A pattern has bit 3 * (dy + 1) + (dx + 1) set when the neighbour at (dx, dy) is present
 * (bit 4, the centre, is clear: the pixel being added). */
typedef struct {
    uint8_t n;      /* groups of present neighbours that touch the centre pixel */
    uint8_t rep[4]; /* a neighbour (bit index) in each group */
    int8_t euler;   /* change of the 8-connected Euler number when the centre is added */
} Groups;

static Groups fg_groups[512]; /* foreground: 8-connected */
static Groups bg_groups[512]; /* background: 4-connected (euler unused) */

/* Gray's bit-quad contribution to 4 x the 8-connected Euler number of one 2 x 2 quad. */
static int quad_euler(int a, int b, int c, int d) /* a b / c d */
{
    int n = a + b + c + d;
    if (n == 1)
        return 1;
    if (n == 3)
        return -1;
    if (n == 2 && a == d)
        return -2; /* a diagonal pair */
    return 0;
}

static void build_groups(void)
{
    for (int pat = 0; pat < 512; pat++) {
        if (pat & 16)
            continue; /* the centre is never present */
        for (int conn = 8; conn >= 4; conn -= 4) {
            Groups *g = conn == 8 ? &fg_groups[pat] : &bg_groups[pat];
            int label[9];
            for (int k = 0; k < 9; k++)
                label[k] = (pat >> k) & 1 ? k : -1;
            /* components of the present neighbours within the window: smallest label wins */
            for (int changed = 1; changed;) {
                changed = 0;
                for (int i = 0; i < 9; i++)
                    for (int j = 0; j < 9; j++) {
                        if (label[i] < 0 || label[j] < 0 || label[j] >= label[i])
                            continue;
                        int dx = abs(i % 3 - j % 3), dy = abs(i / 3 - j / 3);
                        if (conn == 8 ? (dx <= 1 && dy <= 1) : (dx + dy == 1)) {
                            label[i] = label[j];
                            changed = 1;
                        }
                    }
            }
            g->n = 0;
            for (int lab = 0; lab < 9; lab++) { /* one representative per group */
                for (int k = 0; k < 9; k++) {
                    int touches = conn == 8 || k == 1 || k == 3 || k == 5 || k == 7;
                    if (label[k] == lab && touches) {
                        g->rep[g->n++] = (uint8_t)k;
                        break;
                    }
                }
            }
        }
        /* Euler change: the four quads holding the centre, after minus before */
        int on[9], delta = 0;
        for (int k = 0; k < 9; k++)
            on[k] = (pat >> k) & 1;
        for (int centre = 0; centre <= 1; centre++) {
            on[4] = centre;
            int sum = 0;
            for (int qy = 0; qy <= 1; qy++)
                for (int qx = 0; qx <= 1; qx++) {
                    int k = 3 * qy + qx;
                    sum += quad_euler(on[k], on[k + 1], on[k + 3], on[k + 4]);
                }
            delta += centre ? sum : -sum;
        }
        fg_groups[pat].euler = (int8_t)(delta / 4);
    }
}

/* ------------------------------------------------------------------------- union-find */

/* A component (a union-find root's record): its box and place in the live list. */
typedef struct {
    double iou;      /* cached best IoU of the box against the image's boxes */
    int32_t pos;     /* index in the live list, -1 when not listed */
    int32_t dirty;   /* box changed since iou was computed */
    int32_t x0, y0, x1, y1;
} Rec;

typedef struct {
    int32_t h, w, pw;  /* image size, padded width w + 2 */
    /* Per pixel of the (h + 2) x (w + 2) grid: in = present; parent >= 0 the parent pixel,
     * < 0 a root whose record is rec[-1 - parent] (meaningful only where in is set). */
    uint8_t *in;
    int32_t *parent;
    int32_t off[9];    /* pattern bit -> index offset */
    Rec *rec;          /* one record per component created in this sweep */
    int32_t nrec;
    int32_t *live;     /* records whose boxes count at the current cut */
    int32_t nlive;
    int32_t holes;     /* holes of the current foreground mask (foreground sweep) */
    const int64_t *gt; /* this image's ground-truth boxes x1, y1, x2, y2 */
    Py_ssize_t ngt;
} Sweep;

static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* wsolevaluation's calculate_multiple_iou for one box, maximised over the ground truth. */
static double best_iou(const int64_t *gt, Py_ssize_t ngt, int64_t bx0, int64_t by0,
                       int64_t bx1, int64_t by1)
{
    double best = 0.0;
    const int64_t area_a = (bx1 - bx0 + 1) * (by1 - by0 + 1);
    for (Py_ssize_t j = 0; j < ngt; j++) {
        const int64_t *g = gt + 4 * j;
        int64_t iw = min64(bx1, g[2]) - max64(bx0, g[0]) + 1;
        int64_t ih = min64(by1, g[3]) - max64(by0, g[1]) + 1;
        int64_t inter = max64(0, iw) * max64(0, ih);
        int64_t den = area_a + (g[2] - g[0] + 1) * (g[3] - g[1] + 1) - inter;
        double iou = den <= 0 ? 0.0 : (double)inter / (double)den;
        if (iou > best)
            best = iou;
    }
    return best;
}

static inline int32_t uf_find(int32_t *parent, int32_t p)
{
    for (;;) { /* path halving */
        int32_t q = parent[p];
        if (q < 0)
            return p;
        int32_t r = parent[q];
        if (r < 0)
            return q;
        parent[p] = r;
        p = r;
    }
}

static inline void live_add(Sweep *s, int32_t i)
{
    s->rec[i].pos = s->nlive;
    s->live[s->nlive++] = i;
}

static inline void live_del(Sweep *s, Rec *r)
{
    int32_t i = r->pos;
    if (i < 0)
        return;
    int32_t last = s->live[--s->nlive];
    s->live[i] = last;
    s->rec[last].pos = i;
    r->pos = -1;
}

/* Union of two distinct roots; the older record (smaller index) survives. */
static int32_t uf_link(Sweep *s, int32_t a, int32_t b)
{
    if (s->parent[a] < s->parent[b]) { /* records -1 - parent: a's is the newer one */
        int32_t t = a;
        a = b;
        b = t;
    }
    Rec *ra = &s->rec[-1 - s->parent[a]], *rb = &s->rec[-1 - s->parent[b]];
    s->parent[b] = a;
    if (rb->x0 < ra->x0) ra->x0 = rb->x0;
    if (rb->y0 < ra->y0) ra->y0 = rb->y0;
    if (rb->x1 > ra->x1) ra->x1 = rb->x1;
    if (rb->y1 > ra->y1) ra->y1 = rb->y1;
    ra->dirty = 1;
    live_del(s, rb);
    return a;
}

/* Bits 0..2 = which of a[0], a[1], a[2] (bytes 0 or 1) are set. */
static inline unsigned row_bits(const uint8_t *a)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint32_t t;
    memcpy(&t, a, 4); /* one load; the multiply gathers bytes 0, 1, 2 into bits 14..16 */
    return (((t & 0x010101u) * 0x4081u) >> 14) & 7u;
#else
    return (unsigned)a[0] | (unsigned)a[1] << 1 | (unsigned)a[2] << 2;
#endif
}

static inline unsigned pattern(const uint8_t *in, int32_t p, int32_t pw)
{
    return row_bits(in + p - pw - 1) | row_bits(in + p - 1) << 3 | row_bits(in + p + pw - 1) << 6;
}

/* Add pixel yx = (y << 16 | x): join the groups of present neighbours (one find each),
 * extend the component's box. Returns the number of components it joined (0: new one). */
static inline int add_pixel(Sweep *s, uint32_t yx, const Groups *table, int8_t *euler)
{
    const int32_t y = (int32_t)(yx >> 16), x = (int32_t)(yx & 0xffff);
    const int32_t p = (y + 1) * s->pw + x + 1;
    int32_t *parent = s->parent;
    const Groups *g = &table[pattern(s->in, p, s->pw)];
    const int n = g->n;
    int joined = 0;
    s->in[p] = 1;
    *euler = g->euler;
    if (n == 0) { /* a new component */
        int32_t i = s->nrec++;
        Rec *c = &s->rec[i];
        c->x0 = c->x1 = x;
        c->y0 = c->y1 = y;
        c->dirty = 1;
        live_add(s, i);
        parent[p] = -1 - i;
        return 0;
    }
    int32_t r = uf_find(parent, p + s->off[g->rep[0]]);
    joined = 1;
    for (int j = 1; j < n; j++) {
        int32_t rj = uf_find(parent, p + s->off[g->rep[j]]);
        if (rj != r) {
            r = uf_link(s, r, rj);
            joined++;
        }
    }
    parent[p] = r;
    Rec *c = &s->rec[-1 - parent[r]];
    c->x0 = x < c->x0 ? x : c->x0;
    c->x1 = x > c->x1 ? x : c->x1;
    c->y0 = y < c->y0 ? y : c->y0;
    c->y1 = y > c->y1 ? y : c->y1;
    c->dirty = 1;
    return joined;
}

/* Best IoU over the live records' boxes (grow = 0: components, 1: holes); -1 when none. */
static double scan(Sweep *s, int grow)
{
    double best = -1.0;
    const int64_t xmax = s->w - 1, ymax = s->h - 1;
    for (int32_t i = 0; i < s->nlive; i++) {
        Rec *c = &s->rec[s->live[i]];
        if (c->dirty) {
            /* boundingRect x, y, w, h -> x, y, min(x + w, W - 1), min(y + h, H - 1) */
            c->iou = best_iou(s->gt, s->ngt, c->x0 - grow, c->y0 - grow,
                              min64((int64_t)c->x1 + 1 + grow, xmax),
                              min64((int64_t)c->y1 + 1 + grow, ymax));
            c->dirty = 0;
        }
        if (c->iou > best)
            best = c->iou;
    }
    return best;
}

/* ------------------------------------------------------------------- pixel sweeps */

/* Counting sort of the pixels of q by value into order (packed y << 16 | x): bucket v is
 * order[start[v] .. start[v + 1]). Columns x % 4 get their own counters, so that runs of
 * equal values do not wait on each other's increments. */
static void sort_pixels(const uint8_t *q, Py_ssize_t h, Py_ssize_t w, uint32_t *order,
                        int32_t *start)
{
    int32_t cnt[4][256];
    memset(cnt, 0, sizeof(cnt));
    for (Py_ssize_t y = 0; y < h; y++) {
        const uint8_t *row = q + y * w;
        Py_ssize_t x = 0;
        for (; x + 4 <= w; x += 4) {
            cnt[0][row[x]]++;
            cnt[1][row[x + 1]]++;
            cnt[2][row[x + 2]]++;
            cnt[3][row[x + 3]]++;
        }
        for (; x < w; x++)
            cnt[x & 3][row[x]]++;
    }
    int32_t pos = 0;
    for (int v = 0; v < 256; v++) {
        start[v] = pos;
        for (int l = 0; l < 4; l++) {
            int32_t c = cnt[l][v];
            cnt[l][v] = pos; /* the next free slot of lane l in bucket v */
            pos += c;
        }
    }
    start[256] = pos;
    for (Py_ssize_t y = 0; y < h; y++) {
        const uint8_t *row = q + y * w;
        uint32_t yx = (uint32_t)y << 16;
        Py_ssize_t x = 0;
        for (; x + 4 <= w; x += 4, yx += 4) {
            order[cnt[0][row[x]]++] = yx;
            order[cnt[1][row[x + 1]]++] = yx + 1;
            order[cnt[2][row[x + 2]]++] = yx + 2;
            order[cnt[3][row[x + 3]]++] = yx + 3;
        }
        for (; x < w; x++, yx++)
            order[cnt[x & 3][row[x]]++] = yx;
    }
}

/* best[k] = best IoU at cut levels[k] (ascending) by the two union-find sweeps. */
static void sweep_image(Sweep *s, const uint32_t *order, const int32_t *start,
                        const int *levels, int nlev, double *best)
{
    const Py_ssize_t h = s->h, w = s->w, pw = s->pw;
    const Py_ssize_t npad = (h + 2) * pw + 4;
    uint8_t *in = s->in;
    int32_t *parent = s->parent;
    double fg[256], hole[256];
    int32_t nholes[256];

    /* Foreground q > c, cuts descending: components grow. Outside the image is absent.
     * Holes = components - Euler number, the latter updated per pixel. */
    memset(in, 0, (size_t)npad);
    s->nlive = s->nrec = s->holes = 0;
    int v = 256; /* every pixel of value >= v is in */
    int top_hole = -1;
    for (int k = nlev - 1; k >= 0; k--) {
        while (v > levels[k] + 1) {
            v--;
            int32_t holes = s->holes;
            for (int32_t i = start[v]; i < start[v + 1]; i++) {
                int8_t euler;
                int joined = add_pixel(s, order[i], fg_groups, &euler);
                holes += 1 - joined - euler;
            }
            s->holes = holes;
        }
        fg[k] = scan(s, 0);
        nholes[k] = s->holes;
        hole[k] = -1.0;
        if (s->holes > 0 && top_hole < 0)
            top_hole = k;
    }

    /* Background q <= c, cuts ascending up to the last cut with a hole. The frame around
     * the image is one present component (record 0, never listed), so the components left
     * in the live list are exactly the holes. */
    if (top_hole >= 0) {
        memset(in, 0, (size_t)npad);
        for (Py_ssize_t i = 0; i < pw; i++) {
            in[i] = in[(h + 1) * pw + i] = 1;
            parent[i] = parent[(h + 1) * pw + i] = 0;
        }
        for (Py_ssize_t y = 1; y <= h; y++) {
            in[y * pw] = in[y * pw + w + 1] = 1;
            parent[y * pw] = parent[y * pw + w + 1] = 0;
        }
        parent[0] = -1; /* the frame's root, record 0 */
        s->nlive = 0;
        s->nrec = 1;
        s->rec[0].pos = -1;
        s->rec[0].x0 = s->rec[0].y0 = s->rec[0].x1 = s->rec[0].y1 = 0;
        v = -1; /* every pixel of value <= v is in */
        for (int k = 0; k <= top_hole; k++) {
            while (v < levels[k]) {
                v++;
                for (int32_t i = start[v]; i < start[v + 1]; i++) {
                    int8_t unused;
                    add_pixel(s, order[i], bg_groups, &unused);
                }
            }
            if (nholes[k] > 0)
                hole[k] = scan(s, 1);
        }
    }
    for (int k = 0; k < nlev; k++)
        best[k] = fg[k] >= 0 ? (hole[k] > fg[k] ? hole[k] : fg[k])
                             : best_iou(s->gt, s->ngt, 0, 0, 0, 0); /* empty: [0,0,0,0] */
}

/* ------------------------------------------------------------------------ row runs */

/* The cost model that picks the method per image (run_job), in one unit, fitted to timings
 * of both on 224 x 224 CAMs and noise: labelling a cut costs COST_ROW per row plus
 * COST_NONCONVEX per row of several runs (its scan, runs, links and gaps), or, counted as
 * it goes, COST_ROW per row plus COST_NODE per union-find node; the two sweeps cost
 * COST_SWEEP per pixel. */
enum { COST_ROW = 30, COST_NONCONVEX = 250, COST_NODE = 40, COST_SWEEP = 60 };

/* A second method, per cut but O(rows) per cut on smooth maps. Call a row convex at cut c
 * when its mask q > c is one run (or empty). A row is not convex at c iff some pixel x has
 * q(x) <= c < min(max q left of x, max q right of x); one pass per row collects those cuts
 * for the whole image. A hole pixel has mask pixels left and right of it in its row, so a
 * cut whose rows are all convex has no holes, and its 8-connected components are the
 * stretches of consecutive non-empty rows whose runs touch. The runs of rows y and y + 1
 * touch iff c < tau[y] = max_x min(q(y, x), max(q(y + 1, x - 1 .. x + 1))), one number per
 * pair of rows. The x-extent of a lone stretch is that of the whole mask (from the column
 * maxima). At a cut with a non-convex row the convex rows keep their stretches and only the
 * non-convex rows are labelled run by run (components, and holes from the background runs
 * between their runs); see label_cut. Images where that adds up to more than the sweeps
 * would cost (noise) use the sweeps instead. */

typedef struct {
    int32_t h, w;
    const uint8_t *q;
    uint8_t *rowmax, *colmax; /* (h,), (w,) */
    uint8_t *tau;             /* (h,): rows y, y + 1 touch at cut c iff c < tau[y] */
    uint64_t gaps[4];         /* bit c: some row is not convex at cut c */
    uint64_t *rgaps;          /* (h, 4): bit c of row y: row y is not convex at cut c */
    int32_t *lp, *rp;         /* (h,): first / last pixel of row y's mask at the last cut */
    uint64_t *bits;           /* (w + 63) / 64 words: one row's mask */
    /* runs of one cut (foreground, then background): extent, row, union-find parent, box
     * of the component at its root, whether it touches the border */
    int32_t *rx0, *rx1, *rpar, *bx0, *by0, *bx1, *by1;
    uint8_t *rborder;
    uint8_t *kind;            /* (h,) at the cut: 0 empty, 1 convex, 2 not convex */
    int32_t *fgcount;         /* (h,) runs of a non-convex row (its first: fgstart) */
    int32_t *ncrow;           /* (h,) the non-convex rows of the cut */
    int64_t work, budget;     /* labelling work done on this image, and its cap */
    int32_t *fgstart;         /* (h,) first run of each row (a convex row: its stretch) */
    int32_t *bgstart;         /* (h + 1,) first gap of the k-th non-convex row */
    const int64_t *gt;
    Py_ssize_t ngt;
} Runs;

static void set_bits(uint64_t *bits, int lo, int hi) /* [lo, hi) within 0..255 */
{
    for (int word = lo >> 6; word <= (hi - 1) >> 6; word++) {
        int a = word * 64 > lo ? word * 64 : lo, z = word * 64 + 64 < hi ? word * 64 + 64 : hi;
        uint64_t m = (z - a == 64) ? ~(uint64_t)0 : (((uint64_t)1 << (z - a)) - 1);
        bits[word] |= m << (a - word * 64);
    }
}

static inline int test_bit(const uint64_t *bits, int c)
{
    return (int)((bits[c >> 6] >> (c & 63)) & 1);
}

static inline int popcount64(uint64_t x)
{
#if defined(__GNUC__)
    return __builtin_popcountll(x);
#else
    int n = 0;
    for (; x; x &= x - 1)
        n++;
    return n;
#endif
}

static inline int ctz64(uint64_t x) /* x != 0 */
{
#if defined(__GNUC__)
    return __builtin_ctzll(x);
#else
    int n = 0;
    for (; !(x & 1); x >>= 1)
        n++;
    return n;
#endif
}

static inline int top_bit(unsigned x) /* x != 0: the index of its highest set bit */
{
#if defined(__GNUC__)
    return 31 - __builtin_clz(x);
#else
    int n = 0;
    while (x >>= 1)
        n++;
    return n;
#endif
}

static inline uint8_t max8(uint8_t a, uint8_t b) { return a > b ? a : b; }
static inline uint8_t min8(uint8_t a, uint8_t b) { return a < b ? a : b; }

/* The highest cut at which pixel x of row links to row next (8-connectivity): min of the
 * pixel and the brightest of next[x - 1 .. x + 1]. */
static inline uint8_t link_level(const uint8_t *row, const uint8_t *next, int32_t x, int32_t w)
{
    uint8_t d = next[x];
    if (x > 0)
        d = max8(d, next[x - 1]);
    if (x + 1 < w)
        d = max8(d, next[x + 1]);
    return min8(row[x], d);
}

/* Gaps of one row: pixels with q(x) < m(x) = min(max left of x, max right of x), given
 * pre[x] = max of row[0..x] and suf[x] = max of row[x..w-1]. The gap cuts of one valley
 * share their upper end m, so [min q, m) is collected once per valley. */
static inline void collect_gaps(uint64_t *bits, const uint8_t *row, const uint8_t *pre,
                                const uint8_t *suf, int32_t from, int32_t to, int *valley_m,
                                int *valley_lo)
{
    for (int32_t x = from; x < to; x++) { /* 1 <= x <= w - 2 */
        int v = row[x], m = min8(pre[x - 1], suf[x + 1]);
        if (v >= m)
            continue;
        if (m != *valley_m) {
            if (*valley_m >= 0)
                set_bits(bits, *valley_lo, *valley_m);
            *valley_m = m;
            *valley_lo = v;
        } else if (v < *valley_lo) {
            *valley_lo = v;
        }
    }
}

#if defined(__SSE2__)
static inline int hmin8(__m128i v) /* the smallest of 16 bytes */
{
    v = _mm_min_epu8(v, _mm_srli_si128(v, 8));
    v = _mm_min_epu8(v, _mm_srli_si128(v, 4));
    v = _mm_min_epu8(v, _mm_srli_si128(v, 2));
    v = _mm_min_epu8(v, _mm_srli_si128(v, 1));
    return _mm_cvtsi128_si32(v) & 0xFF;
}

static inline int hmax8(__m128i v) /* the largest of 16 bytes */
{
    v = _mm_max_epu8(v, _mm_srli_si128(v, 8));
    v = _mm_max_epu8(v, _mm_srli_si128(v, 4));
    v = _mm_max_epu8(v, _mm_srli_si128(v, 2));
    v = _mm_max_epu8(v, _mm_srli_si128(v, 1));
    return _mm_cvtsi128_si32(v) & 0xFF;
}
#endif

/* Row and column maxima, tau, and the cuts with a non-convex row. buf: 2 * w bytes. */
static void analyse_rows(Runs *r, uint8_t *buf)
{
    const int32_t h = r->h, w = r->w;
    uint8_t *pre = buf, *suf = buf + w;
    memset(r->colmax, 0, (size_t)w);
    r->gaps[0] = r->gaps[1] = r->gaps[2] = r->gaps[3] = 0;
    for (int32_t y = 0; y < h; y++) {
        const uint8_t *row = r->q + (Py_ssize_t)y * w;
        int32_t x = 0;
        uint8_t pm = 0, sm = 0;
#if defined(__SSE2__)
        /* prefix maxima 16 at a time (log-step shifts), column maxima alongside */
        __m128i carry = _mm_setzero_si128();
        for (; x + 16 <= w; x += 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(row + x));
            __m128i cm = _mm_loadu_si128((const __m128i *)(r->colmax + x));
            _mm_storeu_si128((__m128i *)(r->colmax + x), _mm_max_epu8(cm, v));
            v = _mm_max_epu8(v, _mm_slli_si128(v, 1));
            v = _mm_max_epu8(v, _mm_slli_si128(v, 2));
            v = _mm_max_epu8(v, _mm_slli_si128(v, 4));
            v = _mm_max_epu8(v, _mm_slli_si128(v, 8));
            v = _mm_max_epu8(v, carry);
            _mm_storeu_si128((__m128i *)(pre + x), v);
            carry = _mm_set1_epi8((char)pre[x + 15]);
        }
        pm = x ? pre[x - 1] : 0;
#endif
        for (; x < w; x++) {
            pm = max8(pm, row[x]);
            pre[x] = pm;
            r->colmax[x] = max8(r->colmax[x], row[x]);
        }
        r->rowmax[y] = pm;
        x = w;
#if defined(__SSE2__)
        carry = _mm_setzero_si128();
        for (; x - 16 >= 0; x -= 16) { /* suffix maxima, right to left */
            __m128i v = _mm_loadu_si128((const __m128i *)(row + x - 16));
            v = _mm_max_epu8(v, _mm_srli_si128(v, 1));
            v = _mm_max_epu8(v, _mm_srli_si128(v, 2));
            v = _mm_max_epu8(v, _mm_srli_si128(v, 4));
            v = _mm_max_epu8(v, _mm_srli_si128(v, 8));
            v = _mm_max_epu8(v, carry);
            _mm_storeu_si128((__m128i *)(suf + x - 16), v);
            carry = _mm_set1_epi8((char)suf[x - 16]);
        }
        sm = x < w ? suf[x] : 0;
#endif
        for (; x > 0; x--) {
            sm = max8(sm, row[x - 1]);
            suf[x - 1] = sm;
        }
        /* gaps: only where q(x) < min(pre[x - 1], suf[x + 1]) */
        uint64_t *rg = r->rgaps + 4 * (Py_ssize_t)y;
        rg[0] = rg[1] = rg[2] = rg[3] = 0;
        int valley_m = -1, valley_lo = 256;
        x = 1;
#if defined(__SSE2__)
        for (; x + 16 <= w - 1; x += 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(row + x));
            __m128i m = _mm_min_epu8(_mm_loadu_si128((const __m128i *)(pre + x - 1)),
                                     _mm_loadu_si128((const __m128i *)(suf + x + 1)));
            __m128i below = _mm_subs_epu8(m, v); /* > 0 where v < m */
            __m128i none = _mm_cmpeq_epi8(below, _mm_setzero_si128()); /* lanes without a gap */
            if (_mm_movemask_epi8(none) == 0xFFFF)
                continue;
            /* the chunk's gaps in one step when they share their m (m is unimodal along the
             * row and piecewise constant, so they usually do): [min v, m) */
            int mlo = hmin8(_mm_or_si128(m, none)), mhi = hmax8(_mm_andnot_si128(none, m));
            if (mlo == mhi) {
                int vlo = hmin8(_mm_or_si128(v, none));
                if (mhi != valley_m) {
                    if (valley_m >= 0)
                        set_bits(rg, valley_lo, valley_m);
                    valley_m = mhi;
                    valley_lo = vlo;
                } else if (vlo < valley_lo) {
                    valley_lo = vlo;
                }
            } else {
                collect_gaps(rg, row, pre, suf, x, x + 16, &valley_m, &valley_lo);
            }
        }
#endif
        collect_gaps(rg, row, pre, suf, x, w - 1, &valley_m, &valley_lo);
        if (valley_m >= 0)
            set_bits(rg, valley_lo, valley_m);
        for (int k = 0; k < 4; k++)
            r->gaps[k] |= rg[k];
        if (y + 1 < h) { /* tau: the best meeting of row y with row y + 1 dilated by one */
            const uint8_t *next = row + w;
            uint8_t t = 0;
            x = 0;
#if defined(__SSE2__)
            if (w >= 18) {
                __m128i tv = _mm_setzero_si128();
                for (x = 1; x + 17 <= w; x += 16) {
                    __m128i d = _mm_max_epu8(
                        _mm_loadu_si128((const __m128i *)(next + x)),
                        _mm_max_epu8(_mm_loadu_si128((const __m128i *)(next + x - 1)),
                                     _mm_loadu_si128((const __m128i *)(next + x + 1))));
                    tv = _mm_max_epu8(tv, _mm_min_epu8(
                                              _mm_loadu_si128((const __m128i *)(row + x)), d));
                }
                uint8_t lanes[16];
                _mm_storeu_si128((__m128i *)lanes, tv);
                for (int j = 0; j < 16; j++)
                    t = max8(t, lanes[j]);
                /* x = 0 and the tail in the scalar loop below (x = 0 is redone: harmless) */
                int32_t tail = x;
                for (x = 0; x < w; x = (x == 0 ? tail : x + 1)) {
                    t = max8(t, link_level(row, next, x, w));
                }
                x = w;
            }
#endif
            for (; x < w; x++) {
                t = max8(t, link_level(row, next, x, w));
            }
            r->tau[y] = t;
        }
    }
}

#if defined(__SSE2__)
/* Bit j set where p[j] > c, for the 16 bytes at p (unsigned q > c as signed (q ^ 0x80) >
 * (c ^ 0x80)). */
static inline unsigned above16(const uint8_t *p, int c)
{
    const __m128i flip = _mm_set1_epi8((char)0x80), cut = _mm_set1_epi8((char)(c ^ 0x80));
    __m128i v = _mm_xor_si128(_mm_loadu_si128((const __m128i *)p), flip);
    return (unsigned)_mm_movemask_epi8(_mm_cmpgt_epi8(v, cut));
}
#endif

/* Runs of row[x] > c for x < w: bit x of bits (16 pixels per SSE2 compare; the row may be
 * read up to 15 bytes past w, see run_job's padding of q), then the runs from bit scans.
 * Returns their number; x0, x1 get the first and last pixels. */
static int32_t row_runs(const uint8_t *row, int32_t w, int c, uint64_t *bits, int32_t *x0,
                        int32_t *x1)
{
    const int32_t nwords = (w + 63) >> 6;
#if defined(__SSE2__)
    for (int32_t word = 0; word < nwords; word++) {
        uint64_t m = 0;
        for (int32_t x = word * 64, j = 0; j < 4 && x < w; j++, x += 16)
            m |= (uint64_t)above16(row + x, c) << (16 * j);
        bits[word] = m;
    }
#else
    memset(bits, 0, sizeof(uint64_t) * (size_t)nwords);
    for (int32_t x = 0; x < w; x++)
        bits[x >> 6] |= (uint64_t)(row[x] > c) << (x & 63);
#endif
    if (w & 63) /* drop the pixels read past w */
        bits[nwords - 1] &= ((uint64_t)1 << (w & 63)) - 1;
    int32_t n = 0, word = 0;
    uint64_t cur = bits[0];
    for (;;) {
        while (cur == 0) { /* next set bit: a run starts */
            if (++word == nwords)
                return n;
            cur = bits[word];
        }
        int32_t start = word * 64 + ctz64(cur);
        cur = ~cur & (~(uint64_t)0 << (start & 63)); /* now look for the next clear bit */
        while (cur == 0) {
            if (++word == nwords)
                break;
            cur = ~bits[word];
        }
        int32_t stop = cur ? word * 64 + ctz64(cur) : w;
        x0[n] = start;
        x1[n++] = (stop < w ? stop : w) - 1;
        if (stop >= w)
            return n;
        cur = bits[word] & (~(uint64_t)0 << (stop & 63));
    }
}

static inline int32_t run_find(int32_t *par, int32_t i)
{
    while (par[i] != i) {
        par[i] = par[par[i]];
        i = par[i];
    }
    return i;
}

static inline void node_init(Runs *r, int32_t i, int32_t x0, int32_t y0, int32_t x1, int32_t y1,
                             int border)
{
    r->rpar[i] = i;
    r->bx0[i] = x0;
    r->by0[i] = y0;
    r->bx1[i] = x1;
    r->by1[i] = y1;
    r->rborder[i] = (uint8_t)border;
}

/* Join the components of nodes i and j: the smaller root survives with both boxes' union. */
static inline void node_union(Runs *r, int32_t i, int32_t j)
{
    i = run_find(r->rpar, i);
    j = run_find(r->rpar, j);
    if (i == j)
        return;
    if (j < i) {
        int32_t t = i;
        i = j;
        j = t;
    }
    r->rpar[j] = i;
    r->bx0[i] = r->bx0[j] < r->bx0[i] ? r->bx0[j] : r->bx0[i];
    r->by0[i] = r->by0[j] < r->by0[i] ? r->by0[j] : r->by0[i];
    r->bx1[i] = r->bx1[j] > r->bx1[i] ? r->bx1[j] : r->bx1[i];
    r->by1[i] = r->by1[j] > r->by1[i] ? r->by1[j] : r->by1[i];
    r->rborder[i] |= r->rborder[j];
}

static inline double box_iou(const Runs *r, int64_t x0, int64_t y0, int64_t x1, int64_t y1,
                             int grow)
{
    return best_iou(r->gt, r->ngt, x0 - grow, y0 - grow, min64(x1 + 1 + grow, r->w - 1),
                    min64(y1 + 1 + grow, r->h - 1));
}

/* The runs of one row at the current cut: run k spans x0[k] .. x1[k] and is node node0 + k. */
typedef struct {
    const int32_t *x0, *x1;
    int32_t n, node0;
} RowRuns;

/* Union the nodes of the runs of two consecutive rows that touch: 8-connected (slack 1) or
 * 4-connected (slack 0). Runs of a row are at least one pixel apart. */
static inline void link_pair(Runs *r, RowRuns a, RowRuns b, int slack)
{
    int32_t i = 0, j = 0;
    while (i < a.n && j < b.n) {
        if (a.x0[i] <= b.x1[j] + slack && b.x0[j] <= a.x1[i] + slack)
            node_union(r, a.node0 + i, b.node0 + j);
        if (a.x1[i] < b.x1[j])
            i++;
        else
            j++;
    }
}

/* Best box IoU over the roots among nodes [first, last) (holes: those not touching the
 * border, grown by one pixel); -1 when there is none. */
static double best_of_roots(Runs *r, int32_t first, int32_t last, int holes)
{
    double best = -1.0;
    for (int32_t i = first; i < last; i++) {
        if (r->rpar[i] != i || (holes && r->rborder[i]))
            continue;
        double iou = box_iou(r, r->bx0[i], r->by0[i], r->bx1[i], r->by1[i], holes);
        if (iou > best)
            best = iou;
    }
    return best;
}

/* The runs of row y at the cut: its own when it is not convex (kind 2), else the one run
 * lp .. rp of its stretch's node. */
static inline RowRuns row_of(const Runs *r, int32_t y)
{
    RowRuns rr;
    if (r->kind[y] == 2) {
        rr.x0 = r->rx0 + r->fgstart[y];
        rr.x1 = r->rx1 + r->fgstart[y];
        rr.n = r->fgcount[y];
    } else {
        rr.x0 = r->lp + y;
        rr.x1 = r->rp + y;
        rr.n = 1;
    }
    rr.node0 = r->fgstart[y];
    return rr;
}

/* The first pixel x >= a of row with row[x] > c, and the last one x <= b, for a row that
 * has one there. 16 pixels per SSE2 compare: the reads reach up to 15 bytes past either end
 * of the row (run_job pads q with zeros on both sides; a zero is never > c, and a pixel of
 * a neighbouring row is never reached first, since the row holds one at or after a, at or
 * before b). */
static inline int32_t first_above(const uint8_t *row, int32_t a, int c)
{
#if defined(__SSE2__)
    for (;; a += 16) {
        unsigned m = above16(row + a, c);
        if (m)
            return a + ctz64(m);
    }
#else
    while (row[a] <= c)
        a++;
    return a;
#endif
}

static inline int32_t last_above(const uint8_t *row, int32_t b, int c)
{
#if defined(__SSE2__)
    for (;; b -= 16) {
        unsigned m = above16(row + b - 15, c);
        if (m)
            return b - 15 + top_bit(m);
    }
#else
    while (row[b] <= c)
        b--;
    return b;
#endif
}

/* Best IoU at cut c by labelling (the cut has a non-convex row). Cuts come in ascending
 * order for one image, so the first and last pixels > c of each row (lp, rp) only move
 * inwards (amortised O(1) per row and cut). A row convex at c is the one run lp .. rp, and
 * consecutive convex rows whose runs touch (c < tau) are one node of the union-find, a
 * stretch; the rows that are not convex (listed in ncrow) are split into runs by a scan of
 * lp .. rp, one node each, and only the pairs of rows with such a row among them are
 * linked run by run. */
static double label_cut(Runs *r, int c)
{
    const int32_t h = r->h, w = r->w;
    int32_t n = 0, nnc = 0; /* nodes, non-convex rows */
    for (int32_t y = 0; y < h; y++) {
        if (r->rowmax[y] <= c) {
            r->kind[y] = 0;
            continue;
        }
        const uint8_t *row = r->q + (Py_ssize_t)y * w;
        int32_t a = r->lp[y] = first_above(row, r->lp[y], c);
        int32_t b = r->rp[y] = last_above(row, r->rp[y], c);
        if (test_bit(r->rgaps + 4 * (Py_ssize_t)y, c)) { /* runs of a non-convex row */
            r->kind[y] = 2;
            r->ncrow[nnc++] = y;
            int32_t k = row_runs(row + a, b - a + 1, c, r->bits, r->rx0 + n, r->rx1 + n);
            r->fgstart[y] = n;
            r->fgcount[y] = k;
            for (int32_t i = n; i < n + k; i++) {
                r->rx0[i] += a;
                r->rx1[i] += a;
                node_init(r, i, r->rx0[i], y, r->rx1[i], y, 0);
            }
            n += k;
        } else if (y > 0 && r->kind[y - 1] == 1 && r->tau[y - 1] > c) { /* stretch goes on */
            r->kind[y] = 1;
            int32_t i = r->fgstart[y] = r->fgstart[y - 1]; /* still a root */
            r->bx0[i] = a < r->bx0[i] ? a : r->bx0[i];
            r->bx1[i] = b > r->bx1[i] ? b : r->bx1[i];
            r->by1[i] = y;
        } else { /* a new stretch */
            r->kind[y] = 1;
            r->fgstart[y] = n;
            node_init(r, n++, a, y, b, y, 0);
        }
    }
    /* rows y, y + 1 with a non-convex one among them: y + 1 from y when y is not convex,
     * and y - 1, y from y when y - 1 is convex */
    for (int32_t k = 0; k < nnc; k++) {
        int32_t y = r->ncrow[k];
        if (y > 0 && r->kind[y - 1] == 1)
            link_pair(r, row_of(r, y - 1), row_of(r, y), 1);
        if (y + 1 < h && r->kind[y + 1])
            link_pair(r, row_of(r, y), row_of(r, y + 1), 1);
    }
    double best = best_of_roots(r, 0, n, 0);

    /* Holes are made of inner gaps, the background between two runs of a row (whatever
     * lies left of a row's first run or right of its last reaches the border along the
     * row), so only non-convex rows have any. A gap is outside when it overlaps the outside
     * part of a row next to it: an empty row or one beyond the image, or the part left of
     * its first pixel lp or right of its last rp. Overlapping gaps of consecutive rows are
     * 4-connected. */
    int32_t m = n;
    for (int32_t k = 0; k < nnc; k++) {
        int32_t y = r->ncrow[k], first = r->fgstart[y], last = first + r->fgcount[y];
        r->bgstart[k] = m;
        for (int32_t i = first + 1; i < last; i++) {
            int32_t g0 = r->rx1[i - 1] + 1, g1 = r->rx0[i] - 1, outside = 0;
            for (int32_t z = y - 1; z <= y + 1; z += 2) {
                if (z < 0 || z >= h || r->kind[z] == 0 || g0 < r->lp[z] || g1 > r->rp[z])
                    outside = 1;
            }
            r->rx0[m] = g0;
            r->rx1[m] = g1;
            node_init(r, m, g0, y, g1, y, outside);
            m++;
        }
    }
    r->bgstart[nnc] = m;
    for (int32_t k = 0; k + 1 < nnc; k++) {
        if (r->ncrow[k + 1] != r->ncrow[k] + 1)
            continue;
        int32_t a0 = r->bgstart[k], b0 = r->bgstart[k + 1], b1 = r->bgstart[k + 2];
        RowRuns a = {r->rx0 + a0, r->rx1 + a0, b0 - a0, a0};
        RowRuns b = {r->rx0 + b0, r->rx1 + b0, b1 - b0, b0};
        link_pair(r, a, b, 0);
    }
    double hole = best_of_roots(r, n, m, 1);
    r->work += COST_ROW * (int64_t)h + COST_NODE * (int64_t)m; /* see COST_ROW */
    return hole > best ? hole : best;
}

/* First and last column of the mask at every cut: colA[k], colB[k] (levels ascending). */
static void column_extents(const Runs *r, const int *levels, int nlev, int32_t *colA,
                           int32_t *colB)
{
    int32_t x = 0, z = r->w - 1;
    uint8_t pm = 0, sm = 0; /* prefix / suffix maxima of colmax */
    for (int k = 0; k < nlev; k++) {
        while (x < r->w && (pm = max8(pm, r->colmax[x])) <= levels[k])
            x++;
        while (z >= 0 && (sm = max8(sm, r->colmax[z])) <= levels[k])
            z--;
        colA[k] = x;
        colB[k] = z;
    }
}

/* x-extent of the mask q > c over rows y0..y1 (the fast path with several stretches), from
 * each row's first and last pixel > c (lp, rp: moved on from the last cut, see label_cut). */
static void stretch_extent(Runs *r, int c, int32_t y0, int32_t y1, int32_t *x0, int32_t *x1)
{
    int32_t lo = r->w, hi = -1;
    for (int32_t y = y0; y <= y1; y++) {
        const uint8_t *row = r->q + (Py_ssize_t)y * r->w;
        int32_t a = r->lp[y] = first_above(row, r->lp[y], c); /* the row is not empty */
        int32_t b = r->rp[y] = last_above(row, r->rp[y], c);
        lo = a < lo ? a : lo;
        hi = b > hi ? b : hi;
    }
    *x0 = lo;
    *x1 = hi;
}

/* best[k] for every cut; cuts whose rows are all convex take the fast path. Returns 0, or 1
 * when the labelling work exceeded r->budget (the caller then uses the sweeps). */
static int runs_image(Runs *r, const int *levels, int nlev, double *best, int32_t *colA,
                      int32_t *colB)
{
    const int32_t h = r->h;
    for (int32_t y = 0; y < h; y++) {
        r->lp[y] = 0;
        r->rp[y] = r->w - 1;
    }
    column_extents(r, levels, nlev, colA, colB);
    /* Stretches at every cut at once: row y starts one at cut c iff c < rowmax[y] and it
     * does not touch row y - 1 (c >= tau[y - 1]); a difference array over c counts them. */
    int32_t nstretch[257] = {0};
    for (int32_t y = 0; y < h; y++) {
        int lo = y ? r->tau[y - 1] : 0, hi = r->rowmax[y];
        if (lo < hi) {
            nstretch[lo]++;
            nstretch[hi]--;
        }
    }
    for (int c = 1; c < 256; c++)
        nstretch[c] += nstretch[c - 1];
    int32_t top = 0, bottom = h - 1; /* first and last non-empty row at the cut */
    for (int k = 0; k < nlev; k++) {
        const int c = levels[k];
        double b = -1.0;
        while (top < h && r->rowmax[top] <= c)
            top++;
        while (bottom >= 0 && r->rowmax[bottom] <= c)
            bottom--;
        if (test_bit(r->gaps, c)) {
            b = label_cut(r, c);
            if (r->work > r->budget)
                return 1;
        } else if (nstretch[c] == 1) { /* one component: the mask's box */
            b = box_iou(r, colA[k], top, colB[k], bottom, 0);
        } else if (nstretch[c] > 1) {
            /* components: maximal stretches of non-empty rows whose runs touch (rows
             * first .. last of stretch i in rx0[i], rx1[i]) */
            int32_t nst = 0;
            for (int32_t y = top; y <= bottom; y++) {
                if (r->rowmax[y] <= c)
                    continue;
                if (nst > 0 && r->rx1[nst - 1] == y - 1 && r->tau[y - 1] > c) {
                    r->rx1[nst - 1] = y;
                } else {
                    r->rx0[nst] = r->rx1[nst] = y;
                    nst++;
                }
            }
            for (int32_t i = 0; i < nst; i++) {
                int32_t x0, x1;
                stretch_extent(r, c, r->rx0[i], r->rx1[i], &x0, &x1);
                double iou = box_iou(r, x0, r->rx0[i], x1, r->rx1[i], 0);
                b = iou > b ? iou : b;
            }
        }
        best[k] = b >= 0 ? b : best_iou(r->gt, r->ngt, 0, 0, 0, 0); /* empty: [0,0,0,0] */
    }
    return 0;
}

/* ------------------------------------------------------------------------- one batch */

typedef struct {
    /* inputs */
    const char *maps;
    int is_double;
    Py_ssize_t n, h, w, nthr;
    const double *thr;
    const int64_t *gt;
    const int64_t *offsets;
    double *out;
    int method;        /* 0: choose per image, 1: sweeps, 2: row runs */
    /* error report: 0 ok, 1 no memory, 2 value outside [0, 1] */
    int error;
    Py_ssize_t bad_image;
} Job;

/* q = (uint8)(map * 255) as numpy's float64 astype (truncation), for one value. */
static inline uint8_t quantise1(double v, int *bad)
{
    *bad |= !(v >= 0.0 && v <= 1.0);
    v = v >= 0.0 ? (v <= 1.0 ? v : 1.0) : 0.0; /* keeps the cast defined (NaN -> 0) */
    return (uint8_t)(v * 255.0);
}

#if defined(__SSE2__)
/* Eight values at once, the same arithmetic: clamp (NaN -> 0), times 255 in double,
 * truncate, pack to bytes. ok keeps the lanes that were in [0, 1]. */
static inline __m128i quantise8(const __m128d v[4], __m128d *ok)
{
    const __m128d zero = _mm_setzero_pd(), one = _mm_set1_pd(1.0), k255 = _mm_set1_pd(255.0);
    __m128i t[4];
    for (int j = 0; j < 4; j++) {
        *ok = _mm_and_pd(*ok, _mm_and_pd(_mm_cmpge_pd(v[j], zero), _mm_cmple_pd(v[j], one)));
        __m128d c = _mm_min_pd(_mm_max_pd(v[j], zero), one); /* max(NaN, 0) is 0 */
        t[j] = _mm_cvttpd_epi32(_mm_mul_pd(c, k255));
    }
    __m128i w16 = _mm_packs_epi32(_mm_unpacklo_epi64(t[0], t[1]), _mm_unpacklo_epi64(t[2], t[3]));
    return _mm_packus_epi16(w16, w16);
}
#endif

/* Quantise one map into q. Returns max(q), or -1 when a value is outside [0, 1] (or NaN). */
static int quantise(const Job *job, Py_ssize_t img, uint8_t *q)
{
    const Py_ssize_t npix = job->h * job->w;
    int bad = 0;
    unsigned qmax = 0;
    Py_ssize_t i = 0;
    const double *md = (const double *)job->maps + img * npix;
    const float *mf = (const float *)job->maps + img * npix;
#if defined(__SSE2__)
    __m128d ok = _mm_castsi128_pd(_mm_set1_epi32(-1));
    __m128i top = _mm_setzero_si128();
    for (; i + 8 <= npix; i += 8) {
        __m128d v[4];
        if (job->is_double) {
            for (int j = 0; j < 4; j++)
                v[j] = _mm_loadu_pd(md + i + 2 * j);
        } else {
            __m128 f0 = _mm_loadu_ps(mf + i), f1 = _mm_loadu_ps(mf + i + 4);
            v[0] = _mm_cvtps_pd(f0);
            v[1] = _mm_cvtps_pd(_mm_movehl_ps(f0, f0));
            v[2] = _mm_cvtps_pd(f1);
            v[3] = _mm_cvtps_pd(_mm_movehl_ps(f1, f1));
        }
        __m128i b = quantise8(v, &ok);
        _mm_storel_epi64((__m128i *)(q + i), b);
        top = _mm_max_epu8(top, b);
    }
    bad = _mm_movemask_pd(ok) != 3;
    uint8_t lanes[16];
    _mm_storeu_si128((__m128i *)lanes, top);
    for (int j = 0; j < 8; j++)
        qmax = lanes[j] > qmax ? lanes[j] : qmax;
#endif
    for (; i < npix; i++) {
        uint8_t b = quantise1(job->is_double ? md[i] : (double)mf[i], &bad);
        q[i] = b;
        qmax = b > qmax ? b : qmax;
    }
    return bad ? -1 : (int)qmax;
}

static void run_job(Job *job)
{
    const Py_ssize_t h = job->h, w = job->w, npix = h * w, pw = w + 2;
    const Py_ssize_t npad = (h + 2) * pw + 4; /* + 4: row_bits reads one byte past */
    const Py_ssize_t nruns = 2 * npix + 2 * h + 2; /* foreground + background runs */
    const int64_t sweep_cost = COST_SWEEP * (int64_t)npix; /* see COST_ROW */
    uint8_t *qbuf = calloc((size_t)npix + 32, 1); /* zeros before and after: see row_runs */
    uint8_t *q = qbuf ? qbuf + 16 : NULL;
    uint32_t *order = malloc(sizeof(uint32_t) * (size_t)npix);
    uint8_t *in = malloc((size_t)npad);
    int32_t *parent = malloc(sizeof(int32_t) * (size_t)npad);
    Rec *rec = malloc(sizeof(Rec) * (size_t)(npix + 1));
    int32_t *live = malloc(sizeof(int32_t) * (size_t)(npix + 1));
    uint8_t *rowmax = malloc((size_t)(2 * h + w));
    uint8_t *pbuf = malloc((size_t)(2 * w));
    int32_t *runbuf = malloc(sizeof(int32_t) * (size_t)(7 * nruns + 2 * (h + 1)));
    uint8_t *rborder = malloc((size_t)(nruns + h)); /* + kind */
    uint64_t *rowbits = malloc(sizeof(uint64_t) * (size_t)((w + 63) / 64));
    uint64_t *rgaps = malloc(sizeof(uint64_t) * (size_t)(4 * h));
    int32_t *lprp = malloc(sizeof(int32_t) * (size_t)(4 * h)); /* lp, rp, fgcount, ncrow */
    if (!q || !order || !in || !parent || !rec || !live || !rowmax || !pbuf ||
        !runbuf || !rborder || !rowbits || !rgaps || !lprp) {
        job->error = 1;
        goto done;
    }
    Sweep s;
    memset(&s, 0, sizeof(s));
    s.h = (int32_t)h;
    s.w = (int32_t)w;
    s.pw = (int32_t)pw;
    s.in = in;
    s.parent = parent;
    s.rec = rec;
    s.live = live;
    for (int k = 0; k < 9; k++)
        s.off[k] = (k / 3 - 1) * s.pw + (k % 3 - 1);
    Runs r;
    memset(&r, 0, sizeof(r));
    r.h = (int32_t)h;
    r.w = (int32_t)w;
    r.q = q;
    r.rowmax = rowmax;
    r.tau = rowmax + h;
    r.colmax = rowmax + 2 * h;
    r.rx0 = runbuf;
    r.rx1 = runbuf + nruns;
    r.by0 = runbuf + 2 * nruns;
    r.rpar = runbuf + 3 * nruns;
    r.bx0 = runbuf + 4 * nruns;
    r.bx1 = runbuf + 5 * nruns;
    r.by1 = runbuf + 6 * nruns;
    r.fgstart = runbuf + 7 * nruns;
    r.bgstart = r.fgstart + h + 1;
    r.rborder = rborder;
    r.bits = rowbits;
    r.rgaps = rgaps;
    r.lp = lprp;
    r.rp = lprp + h;
    r.fgcount = lprp + 2 * h;
    r.ncrow = lprp + 3 * h;
    r.kind = rborder + nruns;

    for (Py_ssize_t img = 0; img < job->n; img++) {
        int qmax = quantise(job, img, q);
        if (qmax < 0) {
            job->error = 2;
            job->bad_image = img;
            goto done;
        }
        /* cut = int(tau * max(q)) per threshold (in [0, 255]); the distinct cuts, ascending */
        uint8_t needed[256] = {0};
        for (Py_ssize_t t = 0; t < job->nthr; t++)
            needed[(int)(int64_t)(job->thr[t] * (double)qmax)] = 1;
        int levels[256], nlev = 0;
        uint64_t need[4] = {0, 0, 0, 0};
        for (int v = 0; v < 256; v++) {
            if (needed[v]) {
                levels[nlev++] = v;
                need[v >> 6] |= (uint64_t)1 << (v & 63);
            }
        }
        const int64_t *gt = job->gt + 4 * job->offsets[img];
        Py_ssize_t ngt = (Py_ssize_t)(job->offsets[img + 1] - job->offsets[img]);
        double best[256], best_at[256];

        int method = job->method;
        if (method != 1) {
            r.gt = gt;
            r.ngt = ngt;
            analyse_rows(&r, pbuf);
            if (method == 0) {
                int64_t general = 0, nonconvex = 0;
                for (int i = 0; i < 4; i++)
                    general += popcount64(r.gaps[i] & need[i]);
                for (Py_ssize_t y = 0; general && y < h; y++)
                    for (int i = 0; i < 4; i++)
                        nonconvex += popcount64(r.rgaps[4 * y + i] & need[i]);
                method = general * h * COST_ROW + nonconvex * COST_NONCONVEX < sweep_cost ? 2 : 1;
            }
        }
        if (method == 2) {
            /* chosen by the cost model: give up for the sweeps once the labelling has cost
             * what they would (a map noisier than the model saw), at most doubling the time */
            int32_t colA[256], colB[256];
            r.work = 0;
            r.budget = job->method == 0 ? sweep_cost : INT64_MAX;
            if (runs_image(&r, levels, nlev, best, colA, colB))
                method = 1;
        }
        if (method != 2) {
            int32_t start[257];
            sort_pixels(q, h, w, order, start);
            s.gt = gt;
            s.ngt = ngt;
            sweep_image(&s, order, start, levels, nlev, best);
        }
        for (int k = 0; k < nlev; k++)
            best_at[levels[k]] = best[k];
        double *out = job->out + img * job->nthr;
        for (Py_ssize_t t = 0; t < job->nthr; t++)
            out[t] = best_at[(int)(int64_t)(job->thr[t] * (double)qmax)];
    }
done:
    free(qbuf);
    free(order);
    free(in);
    free(parent);
    free(rec);
    free(live);
    free(rowmax);
    free(pbuf);
    free(runbuf);
    free(rborder);
    free(rowbits);
    free(rgaps);
    free(lprp);
}

/* ------------------------------------------------------------------ argument checking */

/* The format character of a buffer, without a native/little-endian byte-order prefix. */
static char format_char(const Py_buffer *b)
{
    const char *f = b->format ? b->format : "B";
    if (*f == '@' || *f == '=' || *f == '<')
        f++;
    return f[1] == '\0' ? f[0] : '?';
}

static int get_buffer(PyObject *obj, Py_buffer *view, const char *name, int writable)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError,
                     "%s must be a C-contiguous%s array (buffer protocol); got %.200s", name,
                     writable ? ", writable" : "", Py_TYPE(obj)->tp_name);
        return -1;
    }
    return 0;
}

static int is_int64(const Py_buffer *b)
{
    char c = format_char(b);
    return b->itemsize == 8 && (c == 'q' || c == 'l');
}

PyDoc_STRVAR(best_ious_doc,
"best_ious(maps, thresholds, gt_boxes, offsets, out, method=0)\n"
"\n"
"wsolevaluation's best IoU at every CAM threshold, for each map.\n"
"\n"
"maps: (N, H, W) float64 or float32 in [0, 1], C-contiguous; quantised as\n"
"uint8(map * 255). thresholds: (T,) float64 in [0, 1); image i's cut for threshold t is\n"
"int(thresholds[t] * max(q_i)) and its mask q_i > cut. gt_boxes: (G, 4) int64 x1, y1, x2, y2;\n"
"image i owns rows offsets[i]:offsets[i + 1] (offsets: (N + 1,) int64, at least one box\n"
"each). out: (N, T) float64, written with max IoU over all findContours(RETR_TREE) boxes\n"
"of the mask (or the box [0, 0, 0, 0] when it is empty) and image i's boxes.\n"
"method: 0 picks per image, 1 forces the pixel sweeps, 2 the row runs (same results).\n"
"Releases the GIL.");

static PyObject *best_ious(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *o_maps, *o_thr, *o_gt, *o_off, *o_out;
    int method = 0;
    if (!PyArg_ParseTuple(args, "OOOOO|i:best_ious", &o_maps, &o_thr, &o_gt, &o_off, &o_out,
                          &method))
        return NULL;
    if (method < 0 || method > 2) {
        PyErr_Format(PyExc_ValueError, "method must be 0 (auto), 1 (sweeps) or 2 (row runs); "
                     "got %d", method);
        return NULL;
    }
    Py_buffer maps = {0}, thr = {0}, gt = {0}, off = {0}, out = {0};
    PyObject *result = NULL;
    if (get_buffer(o_maps, &maps, "maps", 0) < 0 || get_buffer(o_thr, &thr, "thresholds", 0) < 0 ||
        get_buffer(o_gt, &gt, "gt_boxes", 0) < 0 || get_buffer(o_off, &off, "offsets", 0) < 0 ||
        get_buffer(o_out, &out, "out", 1) < 0)
        goto finally;

    char mf = format_char(&maps);
    if (maps.ndim != 3 || !((mf == 'd' && maps.itemsize == 8) || (mf == 'f' && maps.itemsize == 4))) {
        PyErr_Format(PyExc_ValueError,
                     "maps must be a float64 or float32 array of shape (N, H, W); got %d "
                     "dimension(s) of format '%s'", maps.ndim, maps.format ? maps.format : "B");
        goto finally;
    }
    Py_ssize_t n = maps.shape[0], h = maps.shape[1], w = maps.shape[2];
    if (h < 1 || w < 1 || h > 65535 || w > 65535 || (h + 2) * (w + 2) > INT32_MAX) {
        PyErr_Format(PyExc_ValueError,
                     "maps must be at least 1 x 1 and at most 65535 x 65535 with (H + 2) * "
                     "(W + 2) < 2**31; got %zd x %zd", h, w);
        goto finally;
    }
    if (thr.ndim != 1 || format_char(&thr) != 'd' || thr.itemsize != 8) {
        PyErr_SetString(PyExc_ValueError, "thresholds must be a 1-d float64 array");
        goto finally;
    }
    Py_ssize_t nthr = thr.shape[0];
    const double *tv = (const double *)thr.buf;
    for (Py_ssize_t t = 0; t < nthr; t++) {
        if (!(tv[t] >= 0.0 && tv[t] < 1.0)) {
            PyObject *bad = PyFloat_FromDouble(tv[t]);
            if (bad) {
                PyErr_Format(PyExc_ValueError, "thresholds must lie in [0, 1); thresholds[%zd] "
                             "is %R", t, bad);
                Py_DECREF(bad);
            }
            goto finally;
        }
    }
    if (gt.ndim != 2 || gt.shape[1] != 4 || !is_int64(&gt)) {
        PyErr_SetString(PyExc_ValueError, "gt_boxes must be an int64 array of shape (G, 4)");
        goto finally;
    }
    if (off.ndim != 1 || off.shape[0] != n + 1 || !is_int64(&off)) {
        PyErr_Format(PyExc_ValueError, "offsets must be an int64 array of shape (%zd,) "
                     "(N + 1 for N maps)", n + 1);
        goto finally;
    }
    const int64_t *ov = (const int64_t *)off.buf;
    if (ov[0] != 0 || ov[n] != gt.shape[0]) {
        PyErr_Format(PyExc_ValueError, "offsets must start at 0 and end at len(gt_boxes) = "
                     "%zd; got %lld and %lld", gt.shape[0], (long long)ov[0], (long long)ov[n]);
        goto finally;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (ov[i + 1] <= ov[i]) {
            PyErr_Format(PyExc_ValueError, "offsets must increase (every map needs at least "
                         "one box); offsets[%zd] = %lld, offsets[%zd] = %lld", i,
                         (long long)ov[i], i + 1, (long long)ov[i + 1]);
            goto finally;
        }
    }
    if (out.ndim != 2 || out.shape[0] != n || out.shape[1] != nthr ||
        format_char(&out) != 'd' || out.itemsize != 8) {
        PyErr_Format(PyExc_ValueError, "out must be a writable float64 array of shape "
                     "(%zd, %zd)", n, nthr);
        goto finally;
    }

    Job job = {(const char *)maps.buf, mf == 'd', n, h, w, nthr, tv,
               (const int64_t *)gt.buf, ov, (double *)out.buf, method, 0, 0};
    if (n > 0) {
        Py_BEGIN_ALLOW_THREADS
        run_job(&job);
        Py_END_ALLOW_THREADS
    }
    if (job.error == 1) {
        PyErr_NoMemory();
    } else if (job.error == 2) {
        PyErr_Format(PyExc_ValueError, "maps must hold finite values in [0, 1]; maps[%zd] "
                     "does not", job.bad_image);
    } else {
        result = Py_NewRef(Py_None);
    }

finally:
    if (maps.obj) PyBuffer_Release(&maps);
    if (thr.obj) PyBuffer_Release(&thr);
    if (gt.obj) PyBuffer_Release(&gt);
    if (off.obj) PyBuffer_Release(&off);
    if (out.obj) PyBuffer_Release(&out);
    return result;
}

static PyMethodDef methods[] = {
    {"best_ious", best_ious, METH_VARARGS, best_ious_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "infocam._maxbox",
    "MaxBoxAccV2 by union-find sweeps over the pixels sorted by value (see best_ious).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__maxbox(void)
{
    build_groups();
    PyObject *mod = PyModule_Create(&module);
    if (mod && PyModule_AddIntConstant(mod, "MAX_SIDE", 65535) < 0) {
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
