/* A small anomaly-detection data set drawn from a seed, in the MVTec AD
 * layout, so that the whole pipeline can run without downloads (make demo,
 * tests).
 *
 * Five categories: three textures and two objects on a plain background.
 *   weave   (RGB)  basket weave of two thread colours   defects: hole, stain, scratch
 *   mesh    (grey) dark grid lines on a light ground     defects: missing, spot, crack
 *   granite (RGB)  smooth multi-scale value noise        defects: crack, stain, spot
 *   disc    (RGB)  bottle-like ring seen from above      defects: broken, contamination, scratch
 *   screw   (grey) a threaded screw, any orientation     defects: missing, scratch, spot
 * Every image varies (pattern phase, small rotations or any orientation for
 * the screw, shifts, colour and brightness jitter, a fresh noise field for
 * granite, sensor noise). Defects are scratches (thin strokes), spots
 * (opaque ellipses), cracks (dark random walks), holes (dark discs), stains
 * (translucent blobs) and missing parts (the object removed in a region,
 * showing the background). Masks are exact: 255 on precisely the pixels a
 * defect altered, 0 elsewhere; they are never empty for a defective image.
 * Grey categories are written as 1-channel PNGs, as MVTec's grid and screw.
 *
 * Fully deterministic: image k of a split is a function of (seed, category
 * name, split, defect type, k) only, whatever the thread count or the subset
 * of categories generated. */
#ifndef HG_SYNTHETIC_H
#define HG_SYNTHETIC_H

#include <stdint.h>

#include "datasets/image.h"

typedef struct SyntheticConfig {
    uint64_t seed;
    int image_size;       /* width = height, 32 .. 4096 (default 128) */
    int n_train_good;     /* per category (default 40) */
    int n_test_good;      /* per category (default 10) */
    int n_test_defective; /* per category, dealt round-robin over its defect types (default 10) */
    const char *const *categories; /* a subset of synthetic_category_names(); NULL = all */
    int n_categories;
} SyntheticConfig;

SyntheticConfig synthetic_default_config(void);

/* The category names above, in that order; returns the count. */
int synthetic_category_names(const char *const **names);
/* Defect type names of category `category` (index into the list above);
 * returns the count (0 for a bad index). */
int synthetic_defect_names(int category, const char *const **names);

/* Writes DIR/<category>/train/good/NNN.png, DIR/<category>/test/good/NNN.png,
 * DIR/<category>/test/<defect>/NNN.png and DIR/<category>/ground_truth/<defect>/NNN_mask.png
 * (NNN from 000), creating DIR if needed, then DIR/synthetic.txt describing the
 * configuration. Calling it again with the same configuration on a complete
 * directory does nothing (the files would be identical); a category
 * directory that already exists otherwise is an error: nothing is deleted.
 * Load the result with dataset_open(DATASET_MVTEC, DIR, names, n, split). */
hg_status synthetic_write(const char *dir, const SyntheticConfig *cfg);

/* One image in memory: `defect` is an index into the category's defect
 * names, or -1 for a normal image. *image is 8-bit RGB or grey, *mask 1-channel
 * 0/255 (all zero for a normal image). */
hg_status synthetic_render(int category, int defect, int size, uint64_t seed, Image **image,
                           Image **mask);

#endif
