/* Frozen-backbone feature cache.
 *
 * HGAD's backbone is frozen, so each training image's feature maps are the
 * same in every epoch: they are computed once and stored in one file, which
 * training then memory-maps. Per level, image i's map is stored as H*W rows
 * of D values (position-major, "HWC"), exactly the rows the flow consumes.
 * Values are float32 or float16 (half the size; about 3 significant digits).
 *
 * File layout (little-endian): a 4096-byte header (magic "HGADFC01", version,
 * counts, per-level D/H/W, value type, a fingerprint string identifying what
 * was cached), then level 0's maps of all images, level 1's, ... A cache whose
 * fingerprint differs from the caller's is stale and is rebuilt. */
#ifndef HG_PIPELINE_FEATURE_CACHE_H
#define HG_PIPELINE_FEATURE_CACHE_H

#include <stdbool.h>

#include "tensor/tensor.h"

#define FEATURE_CACHE_MAX_LEVELS 8

typedef struct FeatureCacheShape {
    int levels;
    int64_t images;
    int64_t dims[FEATURE_CACHE_MAX_LEVELS], heights[FEATURE_CACHE_MAX_LEVELS],
        widths[FEATURE_CACHE_MAX_LEVELS];
} FeatureCacheShape;

/* Computes the feature maps of image `index`: maps[l] new tensors (1, D_l, H_l, W_l). */
typedef hg_status (*FeatureProducer)(void *context, int64_t index, Tensor **maps);
/* Called after each image (may be NULL). */
typedef void (*FeatureProgress)(void *context, int64_t done, int64_t total);

typedef struct FeatureCache FeatureCache;

/* Opens `path` when it exists with the same fingerprint and shape; otherwise
 * builds it by calling `produce` for every image (written to path.tmp.PID and
 * renamed when complete, so an interrupted build leaves no cache behind). */
FeatureCache *feature_cache_open_or_build(const char *path, const char *fingerprint,
                                          const FeatureCacheShape *shape, bool half,
                                          FeatureProducer produce, void *produce_context,
                                          FeatureProgress progress, void *progress_context);
/* The same, collective over the ranks of pipeline/comm.h (every rank calls
 * it with the same arguments). Rank 0 decides whether the cache is current;
 * if not, rank r computes the maps of its contiguous share of the images,
 * [r*n/N, (r+1)*n/N), and writes them into its own regions of one temporary
 * file that rank 0 created at full size (path.tmp.PID of rank 0); after every
 * rank has synced and closed it, rank 0 writes the header last and renames
 * the file into place; then every rank maps it. `path` must be on a file
 * system that every rank sees (one machine, or a shared one such as NFS).
 * `progress` reports this rank's own share (done of its count). A failure on
 * any rank fails every rank with that rank's message, and leaves no cache
 * behind. With one process this is feature_cache_open_or_build. */
FeatureCache *feature_cache_open_or_build_shared(const char *path, const char *fingerprint,
                                                 const FeatureCacheShape *shape, bool half,
                                                 FeatureProducer produce, void *produce_context,
                                                 FeatureProgress progress, void *progress_context);
/* Opens an existing cache (any fingerprint). */
FeatureCache *feature_cache_open(const char *path);
void feature_cache_close(FeatureCache *cache);

const FeatureCacheShape *feature_cache_shape(const FeatureCache *cache);
const char *feature_cache_fingerprint(const FeatureCache *cache);
bool feature_cache_is_half(const FeatureCache *cache);

/* Copies the rows of images[0 .. count) at `level` into out (count*H*W, D),
 * converting from float16 when needed. */
hg_status feature_cache_gather(const FeatureCache *cache, int level, int64_t count,
                               const int64_t *images, Tensor *out);

#endif
