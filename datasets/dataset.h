/* Anomaly-detection data sets: lists of image files with labels and masks,
 * read from the directory layouts the public HGAD code loads (its
 * datasets/mvtec.py, btad.py, mvtec_3d.py, visa.py, union.py), and the
 * loading of one sample into tensors.
 *
 * A DataSet is a list of samples in a fixed order: categories in index order,
 * then, within a category, exactly the order of the public code (defect-type
 * directories sorted by name, files sorted by name; VisA in CSV order, normal
 * rows first). Sorting is byte-wise (strcmp), which is Python's order for
 * UTF-8 names. Opening checks the layout and that every mask file exists;
 * failures name the path and what was expected there, e.g.
 * "mvtec: no train/good under /data/mvtec/bottle". */
#ifndef HG_DATASET_H
#define HG_DATASET_H

#include <stdint.h>

#include "datasets/transforms.h"
#include "tensor/tensor.h"

typedef enum {
    /* ROOT/<cat>/{train,test}/<type>/<name>.png, masks
     * ROOT/<cat>/ground_truth/<type>/<stem>_mask.png; "good" is normal. Also the layout
     * synthetic_write() produces. */
    DATASET_MVTEC,
    /* ROOT/<cat>/{train,test}/<type>/<name>.{bmp,png}, masks
     * ROOT/<cat>/ground_truth/<type>/<stem>.png
     * (<stem>.bmp for category "03"); "ok" is normal. */
    DATASET_BTAD,
    /* ROOT/<cat>/{train,test}/<type>/rgb/<name>.png, masks ROOT/<cat>/test/<type>/gt/<stem>.png;
     * RGB only (the xyz point clouds are not used); "good" is normal. */
    DATASET_MVTEC3D,
    /* ROOT/split_csv/1cls.csv with columns object, split, label, image, mask
     * (paths relative to ROOT); train = split "train", test = label "normal"
     * rows then label "anomaly" rows, each in file order. Defect type "good"
     * or "anomaly". */
    DATASET_VISA,
    DATASET_FORMAT_COUNT
} DataSetFormat;

typedef enum { SPLIT_TRAIN, SPLIT_TEST } DataSplit;

typedef struct Sample {
    char *image_path;
    char *mask_path;   /* NULL for normal images (their mask is all zeros) */
    char *defect_type; /* the type directory name: "good", "broken_large", "ok", ... */
    int category;      /* index into DataSet.categories */
    int label;         /* 0 normal, 1 anomalous */
} Sample;

typedef struct DataSet {
    int n_categories;
    char **categories; /* names in index order; the index is the class label of unified training */
    int64_t n_samples;
    Sample *samples;
} DataSet;

/* "mvtec", "btad", "mvtec3d", "visa". */
const char *dataset_format_name(DataSetFormat format);
/* The format named `name`; HG_ERR_ARG listing the names otherwise. */
hg_status dataset_format_from_name(const char *name, DataSetFormat *format);
/* The public code's CLASS_NAMES of `format`, in its order (15 MVTec AD, 3 BTAD,
 * 10 MVTec 3D, 12 VisA categories). Returns the count; *names is static. */
int dataset_default_categories(DataSetFormat format, const char *const **names);

/* The `split` of the given categories under `root`; category i of the list
 * gets index i. categories == NULL (n_categories 0) means all the format's
 * default categories. Any category name is accepted (e.g. synthetic ones); a
 * missing one is an error naming the directory. */
DataSet *dataset_open(DataSetFormat format, const char *root, const char *const *categories,
                      int n_categories, DataSplit split);

/* The public UnionDataset: the four data sets with all their default
 * categories, concatenated in the order MVTec AD, BTAD, MVTec 3D, VisA (40
 * categories). roots[] follows that order. */
DataSet *dataset_open_union(const char *const roots[4], DataSplit split);
/* Concatenation: categories and samples of parts[0], then parts[1], ...;
 * category indices are shifted accordingly. Category names must be unique. */
DataSet *dataset_concat(const DataSet *const *parts, int n_parts);
/* The samples of one category (a copy), keeping the whole category list so
 * that indices stay those of the model. */
DataSet *dataset_select_category(const DataSet *ds, int category);
/* Index of the category called `name`, or -1. */
int dataset_find_category(const DataSet *ds, const char *name);
/* Number of samples of `category` with the given label (label -1: any). */
int64_t dataset_count(const DataSet *ds, int category, int label);
void dataset_free(DataSet *ds); /* NULL is fine */

/* Categories found under `root` for an MVTec-like layout (MVTec AD, BTAD,
 * MVTec 3D): the sorted subdirectories that contain a "train" directory.
 * *names is malloc'ed (free each string, then the array). */
hg_status dataset_list_categories(const char *root, char ***names, int *n_names);

/* Sample i preprocessed as the public code does (transforms.h): image
 * (3, crop, crop) normalized, mask (1, M, M) of 0/1 (zeros for a normal
 * image). Either output pointer may be NULL to skip it. A mask whose size
 * differs from its image's is an error naming both files. */
hg_status dataset_load(const DataSet *ds, int64_t index, const Preprocess *pp, Tensor **image,
                       Tensor **mask);
/* n samples stacked: images (n, 3, crop, crop), masks (n, 1, M, M), decoded in
 * parallel (OpenMP over samples). On failure nothing is returned and the
 * error of the first failing sample (in list order) is reported. */
hg_status dataset_load_batch(const DataSet *ds, const int64_t *indices, int64_t n,
                             const Preprocess *pp, Tensor **images, Tensor **masks);

#endif
