/* Data sets (datasets/dataset.h): tiny fake MVTec AD, BTAD, MVTec 3D and VisA
 * trees built in a temporary directory; counts, order, labels, mask pairing,
 * category indices, union order, loading (against naive per-pixel formulas)
 * and every error message. With ../shared: the real MVTec AD bottle category
 * (counts from its README, and one sample against the PyTorch reference in
 * tests/fixtures/transforms_mvtec_bottle.safetensors). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "datasets/dataset.h"
#include "datasets/image.h"
#include "nn/safetensors.h"
#include "tests/testutil.h"

/* ----------------------------------------------------------- tree helpers */

static int setup(void **state) {
    return test_temp_dir_create("hgad_test_dataset");
}

static int teardown(void **state) {
    return test_temp_dir_remove();
}

/* <scratch dir>/rel (testutil's ring of buffers: several may be live at once). */
static const char *P(const char *rel) {
    return test_temp_path("%s", rel);
}

static void mkdirs(const char *path) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(buf, 0777);
            *p = '/';
        }
    mkdir(buf, 0777);
}

static void make_parent(const char *path) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    char *slash = strrchr(buf, '/');
    *slash = 0;
    mkdirs(buf);
}

/* A w x h RGB image whose pixels encode (seed, x, y). */
static Image *pattern(int w, int h, int seed) {
    Image *img = image_new(w, h, 3, 8);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                img->data8[(y * w + x) * 3 + c] = (uint8_t)(seed * 40 + x * 9 + y * 5 + c * 70);
    return img;
}

static void write_png(const char *path, int w, int h, int seed) {
    make_parent(path);
    Image *img = pattern(w, h, seed);
    assert_ok(image_save_png(path, img));
    image_free(img);
}

/* A 0/255 mask with a rectangle [x0, x1) x [y0, y1) set. */
static void write_mask(const char *path, int w, int h, int x0, int y0, int x1, int y1) {
    make_parent(path);
    Image *m = image_new(w, h, 1, 8);
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) m->data8[y * w + x] = 255;
    assert_ok(image_save_png(path, m));
    image_free(m);
}

/* A 24-bit BMP (bottom-up BGR rows padded to 4 bytes), written by hand. */
static void write_bmp(const char *path, int w, int h, int seed) {
    make_parent(path);
    Image *img = pattern(w, h, seed);
    int row = (w * 3 + 3) & ~3;
    uint32_t size = 54 + (uint32_t)(row * h);
    uint8_t hdr[54] = {'B', 'M'};
    memcpy(hdr + 2, &size, 4);
    hdr[10] = 54;
    hdr[14] = 40;
    memcpy(hdr + 18, &w, 4);
    memcpy(hdr + 22, &h, 4);
    hdr[26] = 1;
    hdr[28] = 24;
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(hdr, 1, 54, f);
    uint8_t *line = calloc((size_t)row, 1);
    for (int y = h - 1; y >= 0; y--) {
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) line[x * 3 + c] = img->data8[(y * w + x) * 3 + (2 - c)];
        fwrite(line, 1, (size_t)row, f);
    }
    free(line);
    fclose(f);
    image_free(img);
}

static void write_text(const char *path, const char *text) {
    make_parent(path);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void assert_sample(const DataSet *ds, int64_t i, const char *image, const char *mask,
                          const char *type, int category, int label) {
    assert_true(i < ds->n_samples);
    const Sample *s = &ds->samples[i];
    assert_string_equal(s->image_path, image);
    if (mask)
        assert_string_equal(s->mask_path, mask);
    else
        assert_null(s->mask_path);
    assert_string_equal(s->defect_type, type);
    assert_int_equal(s->category, category);
    assert_int_equal(s->label, label);
}

/* The failure message must contain `part`. */
static void assert_error_has(const char *part) {
    if (!strstr(hg_last_error(), part))
        fail_msg("error \"%s\" does not mention \"%s\"", hg_last_error(), part);
}

/* ---------------------------------------------------------------- MVTec AD */

static void build_mvtec(const char *base) {
    char p[512];
#define MV(rel) (snprintf(p, sizeof p, "%s/%s", base, rel), P(p))
    write_png(MV("bottle/train/good/010.png"), 8, 6, 1);
    write_png(MV("bottle/train/good/000.png"), 8, 6, 2);
    write_png(MV("bottle/train/good/001.png"), 8, 6, 3);
    write_text(MV("bottle/train/good/notes.txt"), "not an image");
    write_png(MV("bottle/test/good/000.png"), 8, 6, 4);
    write_png(MV("bottle/test/crack/000.png"), 8, 6, 5);
    write_png(MV("bottle/test/broken/001.png"), 8, 6, 6);
    write_png(MV("bottle/test/broken/000.png"), 8, 6, 7);
    write_text(MV("bottle/test/README"), "a file among the type directories");
    write_mask(MV("bottle/ground_truth/crack/000_mask.png"), 8, 6, 2, 1, 5, 4);
    write_mask(MV("bottle/ground_truth/broken/000_mask.png"), 8, 6, 0, 0, 8, 1);
    write_mask(MV("bottle/ground_truth/broken/001_mask.png"), 8, 6, 7, 5, 8, 6);
    write_png(MV("cable/train/good/000.png"), 8, 6, 8);
    write_png(MV("cable/test/good/000.png"), 8, 6, 9);
    write_png(MV("cable/test/hole/000.png"), 8, 6, 10);
    write_mask(MV("cable/ground_truth/hole/000_mask.png"), 8, 6, 1, 1, 3, 3);
#undef MV
}

static void test_mvtec_order_labels_masks(void **state) {
    (void)state;
    build_mvtec("mv1");
    const char *cats[] = {"cable", "bottle"};
    DataSet *tr = dataset_open(DATASET_MVTEC, P("mv1"), cats, 2, SPLIT_TRAIN);
    assert_ok_ptr(tr);
    assert_int_equal(tr->n_categories, 2);
    assert_string_equal(tr->categories[0], "cable");
    assert_string_equal(tr->categories[1], "bottle");
    assert_int_equal(tr->n_samples, 4);
    assert_sample(tr, 0, P("mv1/cable/train/good/000.png"), NULL, "good", 0, 0);
    assert_sample(tr, 1, P("mv1/bottle/train/good/000.png"), NULL, "good", 1, 0);
    assert_sample(tr, 2, P("mv1/bottle/train/good/001.png"), NULL, "good", 1, 0);
    assert_sample(tr, 3, P("mv1/bottle/train/good/010.png"), NULL, "good", 1, 0);
    dataset_free(tr);

    DataSet *te = dataset_open(DATASET_MVTEC, P("mv1/"), cats + 1, 1, SPLIT_TEST);
    assert_ok_ptr(te);
    assert_int_equal(te->n_samples, 4);
    /* type directories sorted: broken, crack, good */
    assert_sample(te, 0, P("mv1/bottle/test/broken/000.png"),
                  P("mv1/bottle/ground_truth/broken/000_mask.png"), "broken", 0, 1);
    assert_sample(te, 1, P("mv1/bottle/test/broken/001.png"),
                  P("mv1/bottle/ground_truth/broken/001_mask.png"), "broken", 0, 1);
    assert_sample(te, 2, P("mv1/bottle/test/crack/000.png"),
                  P("mv1/bottle/ground_truth/crack/000_mask.png"), "crack", 0, 1);
    assert_sample(te, 3, P("mv1/bottle/test/good/000.png"), NULL, "good", 0, 0);
    assert_int_equal(dataset_count(te, 0, 1), 3);
    assert_int_equal(dataset_count(te, 0, 0), 1);
    assert_int_equal(dataset_count(te, 0, -1), 4);
    assert_int_equal(dataset_find_category(te, "bottle"), 0);
    assert_int_equal(dataset_find_category(te, "cable"), -1);
    dataset_free(te);

    /* Both categories: per-category selection keeps indices. */
    DataSet *all = dataset_open(DATASET_MVTEC, P("mv1"), cats, 2, SPLIT_TEST);
    assert_ok_ptr(all);
    assert_int_equal(all->n_samples, 6);
    DataSet *sel = dataset_select_category(all, 1);
    assert_ok_ptr(sel);
    assert_int_equal(sel->n_categories, 2);
    assert_int_equal(sel->n_samples, 4);
    for (int64_t i = 0; i < sel->n_samples; i++) assert_int_equal(sel->samples[i].category, 1);
    assert_null(dataset_select_category(all, 2));
    assert_error_has("out of range");
    dataset_free(sel);
    dataset_free(all);

    char **names;
    int n;
    assert_ok(dataset_list_categories(P("mv1"), &names, &n));
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "bottle");
    assert_string_equal(names[1], "cable");
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

static void test_mvtec_errors(void **state) {
    (void)state;
    build_mvtec("mv2");
    const char *bottle[] = {"bottle"}, *cable[] = {"cable"}, *nope[] = {"nope"};
    assert_null(dataset_open(DATASET_MVTEC, P("absent"), bottle, 1, SPLIT_TRAIN));
    assert_error_has("mvtec: data set root");
    assert_error_has(P("absent"));

    assert_null(dataset_open(DATASET_MVTEC, P("mv2"), nope, 1, SPLIT_TRAIN));
    assert_error_has("no category directory");
    assert_error_has(P("mv2/nope"));

    /* The category directory given as root. */
    assert_null(dataset_open(DATASET_MVTEC, P("mv2/bottle"), bottle, 1, SPLIT_TRAIN));
    assert_error_has("looks like a category");

    /* All 15 default categories: the first missing one is named. */
    assert_null(dataset_open(DATASET_MVTEC, P("mv2"), NULL, 0, SPLIT_TRAIN));
    assert_error_has(P("mv2/capsule"));

    /* No train/good. */
    mkdirs(P("mv2/wood/train/defective"));
    const char *wood[] = {"wood"};
    assert_null(dataset_open(DATASET_MVTEC, P("mv2"), wood, 1, SPLIT_TRAIN));
    char want[600];
    snprintf(want, sizeof want, "mvtec: no train/good under %s", P("mv2/wood"));
    assert_string_equal(hg_last_error(), want);
    /* No test directory. */
    mkdirs(P("mv2/wood/train/good"));
    assert_null(dataset_open(DATASET_MVTEC, P("mv2"), wood, 1, SPLIT_TEST));
    assert_error_has("no test under");
    /* A category without images. */
    assert_null(dataset_open(DATASET_MVTEC, P("mv2"), wood, 1, SPLIT_TRAIN));
    assert_error_has("no images for category 'wood'");

    /* A mask missing. */
    remove(P("mv2/cable/ground_truth/hole/000_mask.png"));
    assert_null(dataset_open(DATASET_MVTEC, P("mv2"), cable, 1, SPLIT_TEST));
    assert_error_has(P("mv2/cable/ground_truth/hole/000_mask.png"));
    assert_error_has("is missing");
    assert_error_has(P("mv2/cable/test/hole/000.png"));

    /* Names. */
    const char *twice[] = {"bottle", "bottle"}, *slash[] = {"a/b"};
    assert_null(dataset_open(DATASET_MVTEC, P("mv2"), twice, 2, SPLIT_TRAIN));
    assert_error_has("listed twice");
    assert_null(dataset_open(DATASET_MVTEC, P("mv2"), slash, 1, SPLIT_TRAIN));
    assert_error_has("invalid category name");
    DataSetFormat f;
    assert_int_equal(dataset_format_from_name("mvtec3d", &f), HG_OK);
    assert_int_equal(f, DATASET_MVTEC3D);
    assert_int_equal(dataset_format_from_name("kitti", &f), HG_ERR_ARG);
    assert_error_has("mvtec, btad, mvtec3d, visa");
}

/* --------------------------------------------------------------- loading */

static void test_load_matches_naive(void **state) {
    (void)state;
    build_mvtec("mv3");
    const char *bottle[] = {"bottle"};
    DataSet *te = dataset_open(DATASET_MVTEC, P("mv3"), bottle, 1, SPLIT_TEST);
    assert_ok_ptr(te);
    /* 8x6 image: shorter side 6 stays 6 (no resize), crop 6x6 from left
     * int(round(2 / 2.0)) = 1; mask the same way at M = 6. */
    Preprocess pp = preprocess_imagenet(6, 6);
    Tensor *img, *msk;
    assert_ok(dataset_load(te, 2, &pp, &img, &msk)); /* crack/000, pattern seed 5 */
    assert_int_equal(img->ndim, 3);
    assert_int_equal(img->shape[0], 3);
    assert_int_equal(img->shape[1], 6);
    assert_int_equal(img->shape[2], 6);
    Image *src = pattern(8, 6, 5);
    const float *v = tensor_data(img), *m = tensor_data(msk);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 6; y++)
            for (int x = 0; x < 6; x++) {
                float raw = src->data8[(y * 8 + x + 1) * 3 + c] / 255.0f;
                assert_true(v[(c * 6 + y) * 6 + x] == (raw - pp.mean[c]) / pp.std[c]);
                /* mask rectangle [2,5) x [1,4) shifted by the crop */
                int on = x + 1 >= 2 && x + 1 < 5 && y >= 1 && y < 4;
                if (c == 0) assert_true(m[y * 6 + x] == (float)on);
            }
    image_free(src);
    tensor_free(img);
    tensor_free(msk);

    /* A normal sample: zero mask of the requested size. */
    pp = preprocess_imagenet(4, 5);
    assert_ok(dataset_load(te, 3, &pp, NULL, &msk));
    assert_int_equal(msk->shape[1], 5);
    for (int i = 0; i < 25; i++) assert_true(tensor_data(msk)[i] == 0.0f);
    tensor_free(msk);

    /* A batch equals the samples one by one. */
    int64_t idx[] = {3, 0, 2, 1};
    Tensor *bi, *bm;
    assert_ok(dataset_load_batch(te, idx, 4, &pp, &bi, &bm));
    assert_int_equal(bi->shape[0], 4);
    assert_int_equal(bm->shape[1], 1);
    for (int b = 0; b < 4; b++) {
        Tensor *one_i, *one_m;
        assert_ok(dataset_load(te, idx[b], &pp, &one_i, &one_m));
        assert_memory_equal(tensor_data(bi) + b * 3 * 16, tensor_data(one_i), sizeof(float) * 48);
        assert_memory_equal(tensor_data(bm) + b * 25, tensor_data(one_m), sizeof(float) * 25);
        tensor_free(one_i);
        tensor_free(one_m);
    }
    tensor_free(bi);
    tensor_free(bm);

    /* Errors: a mask of the wrong size, a corrupt image, indices. */
    write_mask(P("mv3/bottle/ground_truth/broken/001_mask.png"), 4, 4, 0, 0, 2, 2);
    assert_int_not_equal(dataset_load(te, 1, &pp, &img, &msk), HG_OK);
    assert_null(img);
    assert_error_has("is 4x4 but its image");
    assert_error_has(P("mv3/bottle/ground_truth/broken/001_mask.png"));
    assert_error_has(P("mv3/bottle/test/broken/001.png"));
    int64_t bad_batch[] = {0, 1};
    assert_int_not_equal(dataset_load_batch(te, bad_batch, 2, &pp, &bi, &bm), HG_OK);
    assert_null(bi);
    assert_error_has("is 4x4 but its image");
    write_text(P("mv3/bottle/test/broken/000.png"), "garbage");
    assert_int_not_equal(dataset_load(te, 0, &pp, &img, NULL), HG_OK);
    assert_error_has(P("mv3/bottle/test/broken/000.png"));
    assert_int_equal(dataset_load(te, 9, &pp, &img, NULL), HG_ERR_ARG);
    assert_error_has("out of range");
    dataset_free(te);
}

/* -------------------------------------------------------------------- BTAD */

static void test_btad(void **state) {
    (void)state;
    write_bmp(P("bt/01/train/ok/0001.bmp"), 5, 4, 1);
    write_bmp(P("bt/01/train/ok/0000.bmp"), 5, 4, 2);
    write_text(P("bt/01/train/ok/0002.jpg"), "ignored: not .bmp or .png");
    write_bmp(P("bt/01/test/ok/0000.bmp"), 5, 4, 3);
    write_bmp(P("bt/01/test/ko/0000.bmp"), 5, 4, 4);
    write_png(P("bt/01/test/ko/0001.png"), 5, 4, 5);
    write_mask(P("bt/01/ground_truth/ko/0000.png"), 5, 4, 0, 0, 2, 2);
    write_mask(P("bt/01/ground_truth/ko/0001.png"), 5, 4, 0, 0, 2, 2);
    write_png(P("bt/03/train/ok/0000.png"), 5, 4, 6);
    write_bmp(P("bt/03/test/ko/0000.bmp"), 5, 4, 7);
    write_bmp(P("bt/03/ground_truth/ko/0000.bmp"), 5, 4, 8); /* product 03: BMP masks */
    const char *cats[] = {"01", "03"};
    DataSet *tr = dataset_open(DATASET_BTAD, P("bt"), cats, 2, SPLIT_TRAIN);
    assert_ok_ptr(tr);
    assert_int_equal(tr->n_samples, 3);
    assert_sample(tr, 0, P("bt/01/train/ok/0000.bmp"), NULL, "ok", 0, 0);
    assert_sample(tr, 1, P("bt/01/train/ok/0001.bmp"), NULL, "ok", 0, 0);
    assert_sample(tr, 2, P("bt/03/train/ok/0000.png"), NULL, "ok", 1, 0);
    dataset_free(tr);
    DataSet *te = dataset_open(DATASET_BTAD, P("bt"), cats, 2, SPLIT_TEST);
    assert_ok_ptr(te);
    assert_int_equal(te->n_samples, 4);
    assert_sample(te, 0, P("bt/01/test/ko/0000.bmp"), P("bt/01/ground_truth/ko/0000.png"), "ko", 0,
                  1);
    assert_sample(te, 1, P("bt/01/test/ko/0001.png"), P("bt/01/ground_truth/ko/0001.png"), "ko", 0,
                  1);
    assert_sample(te, 2, P("bt/01/test/ok/0000.bmp"), NULL, "ok", 0, 0);
    assert_sample(te, 3, P("bt/03/test/ko/0000.bmp"), P("bt/03/ground_truth/ko/0000.bmp"), "ko", 1,
                  1);
    /* The BMP loads; a colour BMP mask is reduced to grey then binarized. */
    Preprocess pp = preprocess_imagenet(4, 4);
    Tensor *img, *msk;
    assert_ok(dataset_load(te, 3, &pp, &img, &msk));
    tensor_free(img);
    tensor_free(msk);
    dataset_free(te);
    const char *two[] = {"02"};
    assert_null(dataset_open(DATASET_BTAD, P("bt"), two, 1, SPLIT_TRAIN));
    assert_error_has("btad: no category directory");
    mkdirs(P("bt/02/train/good"));
    assert_null(dataset_open(DATASET_BTAD, P("bt"), two, 1, SPLIT_TRAIN));
    assert_error_has("btad: no train/ok under");
}

/* ---------------------------------------------------------------- MVTec 3D */

static void test_mvtec3d(void **state) {
    (void)state;
    write_png(P("m3/bagel/train/good/rgb/001.png"), 6, 6, 1);
    write_png(P("m3/bagel/train/good/rgb/000.png"), 6, 6, 2);
    write_text(P("m3/bagel/train/good/xyz/000.tiff"), "point cloud, unused");
    write_png(P("m3/bagel/test/good/rgb/000.png"), 6, 6, 3);
    write_png(P("m3/bagel/test/crack/rgb/000.png"), 6, 6, 4);
    write_mask(P("m3/bagel/test/crack/gt/000.png"), 6, 6, 1, 1, 2, 2);
    mkdirs(P("m3/bagel/test/other/xyz")); /* no rgb/: skipped */
    const char *cats[] = {"bagel"};
    DataSet *tr = dataset_open(DATASET_MVTEC3D, P("m3"), cats, 1, SPLIT_TRAIN);
    assert_ok_ptr(tr);
    assert_int_equal(tr->n_samples, 2);
    assert_sample(tr, 0, P("m3/bagel/train/good/rgb/000.png"), NULL, "good", 0, 0);
    dataset_free(tr);
    DataSet *te = dataset_open(DATASET_MVTEC3D, P("m3"), cats, 1, SPLIT_TEST);
    assert_ok_ptr(te);
    assert_int_equal(te->n_samples, 2);
    assert_sample(te, 0, P("m3/bagel/test/crack/rgb/000.png"), P("m3/bagel/test/crack/gt/000.png"),
                  "crack", 0, 1);
    assert_sample(te, 1, P("m3/bagel/test/good/rgb/000.png"), NULL, "good", 0, 0);
    dataset_free(te);
    remove(P("m3/bagel/test/crack/gt/000.png"));
    assert_null(dataset_open(DATASET_MVTEC3D, P("m3"), cats, 1, SPLIT_TEST));
    assert_error_has(P("m3/bagel/test/crack/gt/000.png"));
}

/* -------------------------------------------------------------------- VisA */

static void test_visa(void **state) {
    (void)state;
    write_text(P("va/split_csv/1cls.csv"),
               "object,split,label,image,mask\r\n"
               "candle,train,normal,candle/Data/Images/Normal/0002.JPG,\r\n"
               "capsules,train,normal,capsules/Data/Images/Normal/0000.JPG,\r\n"
               "candle,test,anomaly,candle/Data/Images/Anomaly/000.JPG,"
               "candle/Data/Masks/Anomaly/000.png\r\n"
               "candle,test,normal,candle/Data/Images/Normal/0009.JPG,\r\n"
               "candle,train,normal,\"candle/Data/Images/Normal/0001.JPG\",\r\n"
               "\r\n"
               "candle,train,normal,\"candle/odd,name \"\"q\"\".JPG\",\r\n"
               "candle,test,anomaly,candle/Data/Images/Anomaly/001.JPG,"
               "\"candle/Data/Masks/Anomaly/001.png\"\r\n");
    /* The files only need to exist at open time. */
    const char *files[] = {
        "candle/Data/Images/Normal/0002.JPG", "capsules/Data/Images/Normal/0000.JPG",
        "candle/Data/Images/Anomaly/000.JPG", "candle/Data/Masks/Anomaly/000.png",
        "candle/Data/Images/Normal/0009.JPG", "candle/Data/Images/Normal/0001.JPG",
        "candle/Data/Images/Anomaly/001.JPG", "candle/Data/Masks/Anomaly/001.png",
        "candle/odd,name \"q\".JPG"};
    char rel[256];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(rel, sizeof rel, "va/%s", files[i]);
        write_text(P(rel), "x");
    }
    const char *cats[] = {"candle", "capsules"};
    DataSet *tr = dataset_open(DATASET_VISA, P("va"), cats, 2, SPLIT_TRAIN);
    assert_ok_ptr(tr);
    assert_int_equal(tr->n_samples, 4);
    /* CSV order within a category, not sorted; quoted fields with ',' and "" */
    assert_sample(tr, 0, P("va/candle/Data/Images/Normal/0002.JPG"), NULL, "good", 0, 0);
    assert_sample(tr, 1, P("va/candle/Data/Images/Normal/0001.JPG"), NULL, "good", 0, 0);
    assert_sample(tr, 2, P("va/candle/odd,name \"q\".JPG"), NULL, "good", 0, 0);
    assert_sample(tr, 3, P("va/capsules/Data/Images/Normal/0000.JPG"), NULL, "good", 1, 0);
    dataset_free(tr);
    const char *candle[] = {"candle"}, *capsules[] = {"capsules"};
    DataSet *te = dataset_open(DATASET_VISA, P("va"), candle, 1, SPLIT_TEST);
    assert_ok_ptr(te);
    assert_int_equal(te->n_samples, 3);
    /* normal rows first, then anomalies */
    assert_sample(te, 0, P("va/candle/Data/Images/Normal/0009.JPG"), NULL, "good", 0, 0);
    assert_sample(te, 1, P("va/candle/Data/Images/Anomaly/000.JPG"),
                  P("va/candle/Data/Masks/Anomaly/000.png"), "anomaly", 0, 1);
    assert_sample(te, 2, P("va/candle/Data/Images/Anomaly/001.JPG"),
                  P("va/candle/Data/Masks/Anomaly/001.png"), "anomaly", 0, 1);
    dataset_free(te);

    assert_null(dataset_open(DATASET_VISA, P("va"), capsules, 1, SPLIT_TEST));
    assert_error_has("no test rows for category 'capsules'");
    remove(P("va/candle/Data/Masks/Anomaly/001.png"));
    assert_null(dataset_open(DATASET_VISA, P("va"), candle, 1, SPLIT_TEST));
    assert_error_has(P("va/candle/Data/Masks/Anomaly/001.png"));
    remove(P("va/candle/Data/Images/Normal/0001.JPG"));
    assert_null(dataset_open(DATASET_VISA, P("va"), candle, 1, SPLIT_TRAIN));
    assert_error_has("data row 5 of");
    write_text(P("vb/split_csv/1cls.csv"), "object,split,image\ncandle,train,x\n");
    write_text(P("vd/split_csv/1cls.csv"), "object,split,label,image,mask\ncandle,\"train\n");
    assert_null(dataset_open(DATASET_VISA, P("vd"), candle, 1, SPLIT_TRAIN));
    assert_error_has("unterminated quoted field");
    assert_null(dataset_open(DATASET_VISA, P("vb"), candle, 1, SPLIT_TRAIN));
    assert_error_has("no 'label' column");
    mkdirs(P("vc"));
    assert_null(dataset_open(DATASET_VISA, P("vc"), candle, 1, SPLIT_TRAIN));
    assert_error_has("visa: no split_csv/1cls.csv under");
}

/* ------------------------------------------------------------------- union */

static void test_union_order(void **state) {
    (void)state;
    const char *const *names;
    char rel[256];
    int n = dataset_default_categories(DATASET_MVTEC, &names);
    assert_int_equal(n, 15);
    for (int i = 0; i < n; i++) {
        snprintf(rel, sizeof rel, "un/mv/%s/train/good/000.png", names[i]);
        write_png(P(rel), 4, 4, i);
    }
    n = dataset_default_categories(DATASET_BTAD, &names);
    assert_int_equal(n, 3);
    for (int i = 0; i < n; i++) {
        snprintf(rel, sizeof rel, "un/bt/%s/train/ok/000.bmp", names[i]);
        write_bmp(P(rel), 4, 4, i);
    }
    n = dataset_default_categories(DATASET_MVTEC3D, &names);
    assert_int_equal(n, 10);
    for (int i = 0; i < n; i++) {
        snprintf(rel, sizeof rel, "un/m3/%s/train/good/rgb/000.png", names[i]);
        write_png(P(rel), 4, 4, i);
    }
    n = dataset_default_categories(DATASET_VISA, &names);
    assert_int_equal(n, 12);
    char csv[4096] = "object,split,label,image,mask\n";
    for (int i = n - 1; i >= 0; i--) { /* reverse CSV order: the category list decides */
        snprintf(rel, sizeof rel, "un/va/%s/0.JPG", names[i]);
        write_text(P(rel), "x");
        snprintf(csv + strlen(csv), sizeof csv - strlen(csv), "%s,train,normal,%s/0.JPG,\n",
                 names[i], names[i]);
    }
    write_text(P("un/va/split_csv/1cls.csv"), csv);
    const char *roots[4] = {P("un/mv"), P("un/bt"), P("un/m3"), P("un/va")};
    DataSet *u = dataset_open_union(roots, SPLIT_TRAIN);
    assert_ok_ptr(u);
    assert_int_equal(u->n_categories, 40);
    assert_int_equal(u->n_samples, 40);
    static const char *expect[40] = {
        "bottle",    "cable",    "capsule", "carpet",     "grid",       "hazelnut",    "leather",
        "metal_nut", "pill",     "screw",   "tile",       "toothbrush", "transistor",  "wood",
        "zipper",    "01",       "02",      "03",         "bagel",      "cable_gland", "carrot",
        "cookie",    "dowel",    "foam",    "peach",      "potato",     "rope",        "tire",
        "candle",    "capsules", "cashew",  "chewinggum", "fryum",      "macaroni1",   "macaroni2",
        "pcb1",      "pcb2",     "pcb3",    "pcb4",       "pipe_fryum"};
    for (int c = 0; c < 40; c++) {
        assert_string_equal(u->categories[c], expect[c]);
        assert_int_equal(u->samples[c].category, c);
        assert_non_null(strstr(u->samples[c].image_path, expect[c]));
    }
    dataset_free(u);
    const char *roots_missing[4] = {P("un/mv"), NULL, P("un/m3"), P("un/va")};
    assert_null(dataset_open_union(roots_missing, SPLIT_TRAIN));
    assert_error_has("union: no root given for btad");
    /* concat refuses duplicate category names */
    const char *one[] = {"bottle"};
    DataSet *a = dataset_open(DATASET_MVTEC, P("un/mv"), one, 1, SPLIT_TRAIN);
    assert_ok_ptr(a);
    const DataSet *pair[2] = {a, a};
    assert_null(dataset_concat(pair, 2));
    assert_error_has("category 'bottle' appears in two data sets");
    dataset_free(a);
}

/* ------------------------------------------------------ real MVTec bottle */

static void test_shared_bottle(void **state) {
    (void)state;
    const char *shared = test_shared_dir();
    if (!shared) {
        print_message("../shared is absent: skipping the real MVTec AD bottle check\n");
        skip();
    }
    char root[1024];
    snprintf(root, sizeof root, "%s/data/mvtec_ad", shared);
    const char *bottle[] = {"bottle"};
    DataSet *tr = dataset_open(DATASET_MVTEC, root, bottle, 1, SPLIT_TRAIN);
    assert_ok_ptr(tr);
    assert_int_equal(tr->n_samples, 209); /* data/README.md */
    dataset_free(tr);
    DataSet *te = dataset_open(DATASET_MVTEC, root, bottle, 1, SPLIT_TEST);
    assert_ok_ptr(te);
    static const char *types[] = {"broken_large", "broken_small", "contamination", "good"};
    static const int counts[] = {20, 22, 21, 20};
    int64_t at = 0;
    for (int t = 0; t < 4; t++) {
        for (int k = 0; k < counts[t]; k++, at++) {
            const Sample *s = &te->samples[at];
            assert_string_equal(s->defect_type, types[t]);
            assert_int_equal(s->label, t < 3);
            char want[1200];
            snprintf(want, sizeof want, "%s/bottle/test/%s/%03d.png", root, types[t], k);
            assert_string_equal(s->image_path, want);
            if (t < 3) {
                snprintf(want, sizeof want, "%s/bottle/ground_truth/%s/%03d_mask.png", root,
                         types[t], k);
                assert_string_equal(s->mask_path, want);
            }
        }
    }
    assert_int_equal(te->n_samples, at);

    /* broken_large/000 against the public code's transforms (PyTorch + PIL). */
    SafetensorsFile *f = safetensors_open(test_fixture("transforms_mvtec_bottle.safetensors"));
    assert_ok_ptr(f);
    Tensor *want_i = safetensors_load_tensor(f, "image"),
           *want_m = safetensors_load_tensor(f, "mask");
    Preprocess pp = preprocess_imagenet(64, 32);
    Tensor *img, *msk;
    assert_ok(dataset_load(te, 0, &pp, &img, &msk));
    test_assert_close(img, want_i, 0, 1.0 / 255 / 0.224 + 1e-6);
    test_assert_close(msk, want_m, 0, 0);
    double ones = 0;
    for (int i = 0; i < 32 * 32; i++) ones += tensor_data(msk)[i];
    assert_true(ones > 0);
    tensor_free(img);
    tensor_free(msk);
    tensor_free(want_i);
    tensor_free(want_m);
    safetensors_close(f);

    /* Timing of one full-size sample at the usual CPU setting. */
    pp = preprocess_imagenet(256, 256);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_ok(dataset_load(te, 0, &pp, &img, &msk));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    print_message("bottle 900x900 PNG + mask -> 256: %.1f ms\n",
                  ((t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9) * 1e3);
    tensor_free(img);
    tensor_free(msk);
    dataset_free(te);

    /* All 15 categories requested: only bottle is there. */
    assert_null(dataset_open(DATASET_MVTEC, root, NULL, 0, SPLIT_TRAIN));
    assert_error_has("no category directory");
    assert_error_has("/cable");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mvtec_order_labels_masks),
        cmocka_unit_test(test_mvtec_errors),
        cmocka_unit_test(test_load_matches_naive),
        cmocka_unit_test(test_btad),
        cmocka_unit_test(test_mvtec3d),
        cmocka_unit_test(test_visa),
        cmocka_unit_test(test_union_order),
        cmocka_unit_test(test_shared_bottle),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
