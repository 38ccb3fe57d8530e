#include "pipeline/feature_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pipeline/comm.h"
#include "tensor/half.h"

#define HEADER_BYTES 4096
#define MAGIC "HGADFC01"
#define FINGERPRINT_BYTES 2048

typedef struct CacheHeader {
    char magic[8];
    uint32_t version, half;
    int64_t levels, images;
    int64_t dims[FEATURE_CACHE_MAX_LEVELS], heights[FEATURE_CACHE_MAX_LEVELS],
        widths[FEATURE_CACHE_MAX_LEVELS];
    char fingerprint[FINGERPRINT_BYTES];
} CacheHeader;
_Static_assert(sizeof(CacheHeader) <= HEADER_BYTES, "cache header must fit its block");

struct FeatureCache {
    FeatureCacheShape shape;
    bool half;
    char fingerprint[FINGERPRINT_BYTES];
    unsigned char *map;
    size_t map_bytes;
    size_t level_offset[FEATURE_CACHE_MAX_LEVELS]; /* bytes from the start of the file */
};

static size_t value_bytes(bool half) {
    return half ? 2 : 4;
}

static int64_t rows_per_image(const FeatureCacheShape *s, int l) {
    return s->heights[l] * s->widths[l];
}

static hg_status check_shape(const FeatureCacheShape *s) {
    if (s->levels < 1 || s->levels > FEATURE_CACHE_MAX_LEVELS || s->images < 1)
        return hg_fail(HG_ERR_ARG, "feature cache: invalid shape (%d levels, %lld images)", s->levels,
                       (long long)s->images);
    for (int l = 0; l < s->levels; l++)
        if (s->dims[l] < 1 || s->heights[l] < 1 || s->widths[l] < 1 ||
            s->dims[l] * s->heights[l] * s->widths[l] > ((int64_t)1 << 32))
            return hg_fail(HG_ERR_ARG, "feature cache: invalid level %d map %lldx%lldx%lld", l,
                           (long long)s->dims[l], (long long)s->heights[l], (long long)s->widths[l]);
    return HG_OK;
}

/* Byte offsets of each level's block, and the total file size. */
static size_t layout(const FeatureCacheShape *s, bool half, size_t *level_offset) {
    size_t offset = HEADER_BYTES;
    for (int l = 0; l < s->levels; l++) {
        level_offset[l] = offset;
        offset += (size_t)(s->images * rows_per_image(s, l) * s->dims[l]) * value_bytes(half);
    }
    return offset;
}

static FeatureCache *map_file(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        hg_fail(HG_ERR_IO, "feature cache %s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    FeatureCache *c = calloc(1, sizeof *c);
    if (!c || fstat(fd, &st) != 0 || st.st_size < HEADER_BYTES) {
        if (c) hg_fail(HG_ERR_FORMAT, "feature cache %s: too short to be a cache", path);
        else hg_fail(HG_ERR_NOMEM, "feature cache: out of memory");
        free(c);
        close(fd);
        return NULL;
    }
    c->map_bytes = (size_t)st.st_size;
    c->map = mmap(NULL, c->map_bytes, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (c->map == MAP_FAILED) {
        hg_fail(HG_ERR_IO, "feature cache %s: cannot map: %s", path, strerror(errno));
        free(c);
        return NULL;
    }
    CacheHeader h;
    memcpy(&h, c->map, sizeof h);
    c->shape.levels = (int)h.levels;
    c->shape.images = h.images;
    for (int l = 0; l < FEATURE_CACHE_MAX_LEVELS; l++) {
        c->shape.dims[l] = h.dims[l];
        c->shape.heights[l] = h.heights[l];
        c->shape.widths[l] = h.widths[l];
    }
    c->half = h.half != 0;
    memcpy(c->fingerprint, h.fingerprint, FINGERPRINT_BYTES);
    c->fingerprint[FINGERPRINT_BYTES - 1] = '\0';
    hg_status s = memcmp(h.magic, MAGIC, 8) || h.version != 1
                      ? hg_fail(HG_ERR_FORMAT, "feature cache %s: not a feature cache", path)
                      : check_shape(&c->shape);
    if (s == HG_OK && layout(&c->shape, c->half, c->level_offset) != c->map_bytes)
        s = hg_fail(HG_ERR_FORMAT, "feature cache %s: size does not match its header", path);
    if (s != HG_OK) {
        feature_cache_close(c);
        return NULL;
    }
    return c;
}

FeatureCache *feature_cache_open(const char *path) {
    return map_file(path);
}

void feature_cache_close(FeatureCache *c) {
    if (!c) return;
    if (c->map && c->map != MAP_FAILED) munmap(c->map, c->map_bytes);
    free(c);
}

static bool same_shape(const FeatureCacheShape *a, const FeatureCacheShape *b) {
    if (a->levels != b->levels || a->images != b->images) return false;
    for (int l = 0; l < a->levels; l++)
        if (a->dims[l] != b->dims[l] || a->heights[l] != b->heights[l] || a->widths[l] != b->widths[l])
            return false;
    return true;
}

/* Writes one image's map (1, D, H, W) as H*W rows of D at its place. */
static hg_status write_map(int fd, const char *tmp, size_t offset, const Tensor *map, bool half,
                           void *buffer) {
    const int64_t D = map->shape[1], HW = map->shape[2] * map->shape[3];
    Tensor *chw = tensor_reshape(map, SHAPE(D, HW));
    Tensor *hwc_view = chw ? tensor_transpose(chw, 0, 1) : NULL;
    Tensor *hwc = hwc_view ? tensor_contiguous(hwc_view) : NULL;
    tensor_free(chw);
    tensor_free(hwc_view);
    if (!hwc) return hg_last_status();
    size_t bytes = (size_t)(D * HW) * value_bytes(half);
    const void *src = tensor_data(hwc);
    if (half) {
        float_to_half_array(tensor_data(hwc), buffer, D * HW);
        src = buffer;
    }
    ssize_t written = pwrite(fd, src, bytes, (off_t)offset);
    tensor_free(hwc);
    if (written != (ssize_t)bytes)
        return hg_fail(HG_ERR_IO, "feature cache %s: write failed: %s", tmp,
                       written < 0 ? strerror(errno) : "short write (disk full?)");
    return HG_OK;
}

/* Creates `tmp` at its full size (holes until written). */
static hg_status create_file(const char *tmp, size_t total, int *fd) {
    *fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (*fd < 0)
        return hg_fail(HG_ERR_IO, "feature cache %s: cannot create: %s", tmp, strerror(errno));
    if (ftruncate(*fd, (off_t)total) != 0)
        return hg_fail(HG_ERR_IO, "feature cache %s: cannot size to %zu bytes: %s", tmp, total,
                       strerror(errno));
    return HG_OK;
}

/* Computes and writes the maps of images [first, end); progress counts from first. */
static hg_status write_images(int fd, const char *tmp, const FeatureCacheShape *shape, bool half,
                              const size_t *offsets, int64_t first, int64_t end,
                              FeatureProducer produce, void *produce_context,
                              FeatureProgress progress, void *progress_context) {
    size_t largest = 0;
    for (int l = 0; l < shape->levels; l++) {
        size_t n = (size_t)(rows_per_image(shape, l) * shape->dims[l]) * 2;
        if (n > largest) largest = n;
    }
    void *buffer = malloc(largest);
    if (!buffer) return hg_fail(HG_ERR_NOMEM, "feature cache: out of memory");
    hg_status s = HG_OK;
    Tensor *maps[FEATURE_CACHE_MAX_LEVELS] = {0};
    for (int64_t i = first; s == HG_OK && i < end; i++) {
        s = produce(produce_context, i, maps);
        for (int l = 0; s == HG_OK && l < shape->levels; l++) {
            const Tensor *m = maps[l];
            if (!m || m->ndim != 4 || m->shape[0] != 1 || m->shape[1] != shape->dims[l] ||
                m->shape[2] != shape->heights[l] || m->shape[3] != shape->widths[l]) {
                char got[64];
                s = hg_fail(HG_ERR_SHAPE, "feature cache: image %lld level %d map %s, expected [1,%lld,%lld,%lld]",
                            (long long)i, l, m ? tensor_shape_str(m, got, sizeof got) : "missing",
                            (long long)shape->dims[l], (long long)shape->heights[l], (long long)shape->widths[l]);
                break;
            }
            size_t per_image = (size_t)(rows_per_image(shape, l) * shape->dims[l]) * value_bytes(half);
            s = write_map(fd, tmp, offsets[l] + (size_t)i * per_image, m, half, buffer);
        }
        for (int l = 0; l < FEATURE_CACHE_MAX_LEVELS; l++) tensor_free(maps[l]), maps[l] = NULL;
        if (s == HG_OK && progress) progress(progress_context, i + 1 - first, end - first);
    }
    free(buffer);
    return s;
}

/* Writes the header (last: a file with a valid header is complete) and syncs. */
static hg_status write_header(int fd, const char *tmp, const FeatureCacheShape *shape, bool half,
                              const char *fingerprint) {
    CacheHeader *h = calloc(1, HEADER_BYTES);
    if (!h) return hg_fail(HG_ERR_NOMEM, "feature cache: out of memory");
    memcpy(h->magic, MAGIC, 8);
    h->version = 1;
    h->half = half;
    h->levels = shape->levels;
    h->images = shape->images;
    for (int l = 0; l < shape->levels; l++) {
        h->dims[l] = shape->dims[l];
        h->heights[l] = shape->heights[l];
        h->widths[l] = shape->widths[l];
    }
    snprintf(h->fingerprint, FINGERPRINT_BYTES, "%s", fingerprint);
    hg_status s = HG_OK;
    if (pwrite(fd, h, HEADER_BYTES, 0) != HEADER_BYTES || fsync(fd) != 0)
        s = hg_fail(HG_ERR_IO, "feature cache %s: cannot write header: %s", tmp, strerror(errno));
    free(h);
    return s;
}

/* Closes fd (a failed close loses data on some file systems). */
static hg_status close_file(int fd, const char *tmp, hg_status s) {
    if (fd >= 0 && close(fd) != 0 && s == HG_OK)
        s = hg_fail(HG_ERR_IO, "feature cache %s: close failed: %s", tmp, strerror(errno));
    return s;
}

static hg_status build(const char *path, const char *fingerprint, const FeatureCacheShape *shape,
                       bool half, FeatureProducer produce, void *produce_context,
                       FeatureProgress progress, void *progress_context) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp)
        return hg_fail(HG_ERR_ARG, "feature cache: path too long");
    size_t offsets[FEATURE_CACHE_MAX_LEVELS];
    size_t total = layout(shape, half, offsets);
    int fd = -1;
    hg_status s = create_file(tmp, total, &fd);
    if (fd < 0) return s;
    if (s == HG_OK)
        s = write_images(fd, tmp, shape, half, offsets, 0, shape->images, produce, produce_context,
                         progress, progress_context);
    if (s == HG_OK) s = write_header(fd, tmp, shape, half, fingerprint);
    s = close_file(fd, tmp, s);
    if (s == HG_OK && rename(tmp, path) != 0)
        s = hg_fail(HG_ERR_IO, "feature cache %s: cannot rename into place: %s", path, strerror(errno));
    if (s != HG_OK) unlink(tmp);
    return s;
}

static bool is_current(const FeatureCache *c, const char *fingerprint,
                       const FeatureCacheShape *shape, bool half) {
    return c && c->half == half && same_shape(&c->shape, shape) &&
           !strcmp(c->fingerprint, fingerprint);
}

FeatureCache *feature_cache_open_or_build(const char *path, const char *fingerprint,
                                          const FeatureCacheShape *shape, bool half,
                                          FeatureProducer produce, void *produce_context,
                                          FeatureProgress progress, void *progress_context) {
    if (check_shape(shape) != HG_OK) return NULL;
    if (strlen(fingerprint) >= FINGERPRINT_BYTES) {
        hg_fail(HG_ERR_ARG, "feature cache: fingerprint longer than %d bytes", FINGERPRINT_BYTES - 1);
        return NULL;
    }
    if (access(path, F_OK) == 0) {
        FeatureCache *c = map_file(path);
        if (is_current(c, fingerprint, shape, half)) return c;
        feature_cache_close(c); /* stale or unreadable: rebuild */
        hg_clear_error();
    }
    if (build(path, fingerprint, shape, half, produce, produce_context, progress, progress_context) != HG_OK)
        return NULL;
    return map_file(path);
}

/* Every rank maps the finished file; any failure fails all. */
static FeatureCache *map_on_every_rank(const char *path) {
    FeatureCache *c = map_file(path);
    if (comm_agree(c ? HG_OK : hg_last_status()) != HG_OK) {
        feature_cache_close(c);
        return NULL;
    }
    return c;
}

FeatureCache *feature_cache_open_or_build_shared(const char *path, const char *fingerprint,
                                                 const FeatureCacheShape *shape, bool half,
                                                 FeatureProducer produce, void *produce_context,
                                                 FeatureProgress progress, void *progress_context) {
    if (comm_size() == 1)
        return feature_cache_open_or_build(path, fingerprint, shape, half, produce, produce_context,
                                           progress, progress_context);
    /* the same arguments on every rank: these checks agree by themselves */
    if (check_shape(shape) != HG_OK) return NULL;
    if (strlen(fingerprint) >= FINGERPRINT_BYTES) {
        hg_fail(HG_ERR_ARG, "feature cache: fingerprint longer than %d bytes",
                FINGERPRINT_BYTES - 1);
        return NULL;
    }
    const int rank = comm_rank(), ranks = comm_size();
    /* rank 0 decides whether the cache is current, and names the temporary file */
    int64_t decision[2] = {0, (int64_t)getpid()}; /* current, rank 0's pid */
    if (rank == 0 && access(path, F_OK) == 0) {
        FeatureCache *c = map_file(path);
        decision[0] = is_current(c, fingerprint, shape, half);
        feature_cache_close(c);
        hg_clear_error();
    }
    if (comm_broadcast(decision, sizeof decision, 0) != HG_OK) return NULL;
    if (decision[0]) return map_on_every_rank(path);
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%lld", path, (long long)decision[1]) >= (int)sizeof tmp) {
        hg_fail(HG_ERR_ARG, "feature cache: path too long");
        return NULL;
    }
    size_t offsets[FEATURE_CACHE_MAX_LEVELS];
    const size_t total = layout(shape, half, offsets);
    int fd = -1;
    hg_status s = rank == 0 ? create_file(tmp, total, &fd) : HG_OK;
    s = comm_agree(s); /* the file exists at full size before anyone writes */
    if (s == HG_OK && rank != 0) {
        fd = open(tmp, O_RDWR | O_CLOEXEC);
        if (fd < 0)
            s = hg_fail(HG_ERR_IO, "feature cache %s: cannot open: %s", tmp, strerror(errno));
    }
    if (s == HG_OK) {
        const int64_t first = shape->images * rank / ranks,
                      end = shape->images * (rank + 1) / ranks;
        s = write_images(fd, tmp, shape, half, offsets, first, end, produce, produce_context,
                         progress, progress_context);
    }
    /* every rank's regions are on disk before the header makes the file valid */
    if (s == HG_OK && rank != 0 && fsync(fd) != 0)
        s = hg_fail(HG_ERR_IO, "feature cache %s: sync failed: %s", tmp, strerror(errno));
    if (rank != 0) s = close_file(fd, tmp, s), fd = -1;
    s = comm_agree(s);
    if (rank == 0) {
        if (s == HG_OK) s = write_header(fd, tmp, shape, half, fingerprint);
        s = close_file(fd, tmp, s);
        if (s == HG_OK && rename(tmp, path) != 0)
            s = hg_fail(HG_ERR_IO, "feature cache %s: cannot rename into place: %s", path,
                        strerror(errno));
        if (s != HG_OK) unlink(tmp);
    }
    if (comm_agree(s) != HG_OK) return NULL;
    return map_on_every_rank(path);
}

const FeatureCacheShape *feature_cache_shape(const FeatureCache *c) {
    return &c->shape;
}

const char *feature_cache_fingerprint(const FeatureCache *c) {
    return c->fingerprint;
}

bool feature_cache_is_half(const FeatureCache *c) {
    return c->half;
}

hg_status feature_cache_gather(const FeatureCache *c, int level, int64_t count,
                               const int64_t *images, Tensor *out) {
    if (level < 0 || level >= c->shape.levels)
        return hg_fail(HG_ERR_ARG, "feature cache: level %d outside [0, %d)", level, c->shape.levels);
    const int64_t rows = rows_per_image(&c->shape, level), D = c->shape.dims[level];
    char s[64];
    if (!tensor_is_contiguous(out) || out->ndim != 2 || out->shape[0] != count * rows || out->shape[1] != D)
        return hg_fail(HG_ERR_SHAPE, "feature cache: output %s, expected (%lld, %lld)",
                       tensor_shape_str(out, s, sizeof s), (long long)(count * rows), (long long)D);
    for (int64_t k = 0; k < count; k++)
        if (images[k] < 0 || images[k] >= c->shape.images)
            return hg_fail(HG_ERR_ARG, "feature cache: image %lld outside [0, %lld)", (long long)images[k],
                           (long long)c->shape.images);
    const size_t per_image = (size_t)(rows * D);
    float *dst = tensor_data(out);
#pragma omp parallel for if (count * (int64_t)per_image > 65536)
    for (int64_t k = 0; k < count; k++) {
        const unsigned char *src = c->map + c->level_offset[level] + (size_t)images[k] * per_image * value_bytes(c->half);
        if (c->half) half_to_float_array((const uint16_t *)src, dst + (size_t)k * per_image, (int64_t)per_image);
        else memcpy(dst + (size_t)k * per_image, src, per_image * sizeof(float));
    }
    return HG_OK;
}
