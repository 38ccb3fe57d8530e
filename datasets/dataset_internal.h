/* Internal to datasets/dataset*.c: building a DataSet and reading the layouts. */
#ifndef HG_DATASET_INTERNAL_H
#define HG_DATASET_INTERNAL_H

#include <stdbool.h>

#include "datasets/dataset.h"

/* An empty data set (no categories, no samples). */
DataSet *dataset_new_empty(void);
/* Appends a category (copied name); its index is the previous n_categories. */
hg_status dataset_add_category(DataSet *ds, const char *name);
/* Appends a sample; the strings are copied, mask may be NULL. */
hg_status dataset_add_sample(DataSet *ds, const char *image, const char *mask, const char *type,
                             int category, int label);

/* Reads the samples of category `index` (already added) from the layout of
 * `format` under `root`. */
hg_status dataset_read_category(DataSet *ds, DataSetFormat format, const char *root, int index,
                                DataSplit split);

/* "a/b" (one slash between), malloc'ed; NULL with HG_ERR_NOMEM recorded. */
char *dataset_path_join(const char *a, const char *b);
bool dataset_is_dir(const char *path);
bool dataset_exists(const char *path);

#endif
