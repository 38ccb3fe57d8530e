/* Synthetic data set (datasets/synthetic.h): same seed -> byte-identical
 * files, another seed -> other images; masks binary, of the image's size,
 * non-empty exactly for defective images; the layout loads with the MVTec
 * loader with the expected counts; grey categories are 1-channel; rerunning
 * is a no-op, a conflicting directory and an unwritable one are errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "datasets/dataset.h"
#include "datasets/image.h"
#include "datasets/synthetic.h"
#include "tests/testutil.h"

static int setup(void **state) {
    return test_temp_dir_create("hgad_test_synthetic");
}

static int teardown(void **state) {
    return test_temp_dir_remove();
}

/* <scratch dir>/rel (testutil's ring of buffers: several may be live at once). */
static const char *P(const char *rel) {
    return test_temp_path("%s", rel);
}

static const char *const CATS[] = {"disc", "mesh", "granite"};

static SyntheticConfig small_config(uint64_t seed) {
    SyntheticConfig cfg = synthetic_default_config();
    cfg.seed = seed;
    cfg.image_size = 64;
    cfg.n_train_good = 3;
    cfg.n_test_good = 2;
    cfg.n_test_defective = 4; /* 2, 1, 1 over the three types */
    cfg.categories = CATS;
    cfg.n_categories = 3;
    return cfg;
}

static unsigned char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)len + 1);
    *n = fread(buf, 1, (size_t)len, f);
    fclose(f);
    return buf;
}

static bool same_file(const char *a, const char *b) {
    size_t na, nb;
    unsigned char *x = read_all(a, &na), *y = read_all(b, &nb);
    bool same = na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

/* The path of `path` (under dir_a) re-rooted under dir_b. */
static void rebase(char *out, size_t size, const char *path, const char *dir_a, const char *dir_b) {
    snprintf(out, size, "%s%s", dir_b, path + strlen(dir_a));
}

static void test_deterministic(void **state) {
    (void)state;
    SyntheticConfig cfg = small_config(42);
    assert_ok(synthetic_write(P("a"), &cfg));
    assert_ok(synthetic_write(P("b/nested/dir"), &cfg)); /* parents are created */
    SyntheticConfig other = small_config(43);
    assert_ok(synthetic_write(P("c"), &other));
    char dir_a[512], dir_b[512], dir_c[512], pb[1024], pc[1024];
    snprintf(dir_a, sizeof dir_a, "%s", P("a"));
    snprintf(dir_b, sizeof dir_b, "%s", P("b/nested/dir"));
    snprintf(dir_c, sizeof dir_c, "%s", P("c"));
    int compared = 0, differ_c = 0;
    for (int split = 0; split < 2; split++) {
        DataSet *ds = dataset_open(DATASET_MVTEC, dir_a, CATS, 3, split ? SPLIT_TEST : SPLIT_TRAIN);
        assert_ok_ptr(ds);
        for (int64_t i = 0; i < ds->n_samples; i++) {
            const Sample *s = &ds->samples[i];
            rebase(pb, sizeof pb, s->image_path, dir_a, dir_b);
            rebase(pc, sizeof pc, s->image_path, dir_a, dir_c);
            if (!same_file(s->image_path, pb)) fail_msg("%s and %s differ", s->image_path, pb);
            differ_c += !same_file(s->image_path, pc);
            if (s->mask_path) {
                rebase(pb, sizeof pb, s->mask_path, dir_a, dir_b);
                assert_true(same_file(s->mask_path, pb));
            }
            compared++;
        }
        dataset_free(ds);
    }
    assert_int_equal(compared, 3 * (3 + 2 + 4));
    assert_int_equal(differ_c, compared); /* another seed: every image changes */
    snprintf(pb, sizeof pb, "%s/synthetic.txt", dir_b);
    snprintf(pc, sizeof pc, "%s/synthetic.txt", dir_a);
    assert_true(same_file(pb, pc));

    /* A subset of categories draws the same images for those categories. */
    SyntheticConfig sub = small_config(42);
    sub.categories = CATS + 1;
    sub.n_categories = 1;
    assert_ok(synthetic_write(P("d"), &sub));
    assert_true(same_file(P("a/mesh/test/crack/000.png"), P("d/mesh/test/crack/000.png")));
    assert_true(same_file(P("a/mesh/train/good/002.png"), P("d/mesh/train/good/002.png")));

    /* Direct rendering is reproducible too. */
    Image *i1, *m1, *i2, *m2;
    assert_ok(synthetic_render(4, 0, 48, 7, &i1, &m1));
    assert_ok(synthetic_render(4, 0, 48, 7, &i2, &m2));
    assert_memory_equal(i1->data8, i2->data8, image_size_bytes(i1));
    assert_memory_equal(m1->data8, m2->data8, image_size_bytes(m1));
    image_free(i1);
    image_free(m1);
    image_free(i2);
    image_free(m2);
}

static void test_layout_and_masks(void **state) {
    (void)state;
    SyntheticConfig cfg = small_config(5);
    assert_ok(synthetic_write(P("e"), &cfg));
    DataSet *tr = dataset_open(DATASET_MVTEC, P("e"), CATS, 3, SPLIT_TRAIN);
    assert_ok_ptr(tr);
    for (int c = 0; c < 3; c++) assert_int_equal(dataset_count(tr, c, 0), 3);
    assert_int_equal(tr->n_samples, 9);
    dataset_free(tr);
    DataSet *te = dataset_open(DATASET_MVTEC, P("e"), CATS, 3, SPLIT_TEST);
    assert_ok_ptr(te);
    assert_int_equal(te->n_samples, 3 * 6);
    for (int c = 0; c < 3; c++) {
        assert_int_equal(dataset_count(te, c, 0), 2);
        assert_int_equal(dataset_count(te, c, 1), 4);
        /* round-robin: the first type gets two images */
        const char *const *names;
        int n_all = synthetic_category_names(&names), builtin = -1;
        for (int k = 0; k < n_all; k++)
            if (!strcmp(names[k], CATS[c])) builtin = k;
        const char *const *defects;
        assert_int_equal(synthetic_defect_names(builtin, &defects), 3);
        int per_type[3] = {0};
        for (int64_t i = 0; i < te->n_samples; i++)
            for (int d = 0; d < 3; d++)
                per_type[d] +=
                    te->samples[i].category == c && !strcmp(te->samples[i].defect_type, defects[d]);
        assert_int_equal(per_type[0], 2);
        assert_int_equal(per_type[1], 1);
        assert_int_equal(per_type[2], 1);
    }
    for (int64_t i = 0; i < te->n_samples; i++) {
        const Sample *s = &te->samples[i];
        Image *img = image_load(s->image_path);
        assert_ok_ptr(img);
        assert_int_equal(img->width, 64);
        assert_int_equal(img->height, 64);
        /* mesh is grey like MVTec's grid; disc and granite are RGB */
        assert_int_equal(img->channels, s->category == 1 ? 1 : 3);
        if (s->label == 0) {
            assert_null(s->mask_path);
        } else {
            Image *m = image_load(s->mask_path);
            assert_ok_ptr(m);
            assert_int_equal(m->channels, 1);
            assert_int_equal(m->width, 64);
            assert_int_equal(m->height, 64);
            int on = 0;
            for (int p = 0; p < 64 * 64; p++) {
                assert_true(m->data8[p] == 0 || m->data8[p] == 255);
                on += m->data8[p] == 255;
            }
            if (on == 0) fail_msg("empty mask %s", s->mask_path);
            assert_true(on < 64 * 64 / 4); /* a defect, not the whole image */
            image_free(m);
        }
        image_free(img);
    }
    /* Loads through the preprocessing. */
    Preprocess pp = preprocess_imagenet(32, 16);
    Tensor *img, *msk;
    assert_ok(dataset_load(te, te->n_samples - 1, &pp, &img, &msk));
    tensor_free(img);
    tensor_free(msk);
    dataset_free(te);
}

/* Defect pixels differ from the surrounding normal appearance: the mean
 * change inside the mask is large compared with the sensor noise. */
static void test_defects_visible(void **state) {
    (void)state;
    const char *const *names;
    int n_cat = synthetic_category_names(&names);
    assert_int_equal(n_cat, 5);
    for (int c = 0; c < n_cat; c++)
        for (int d = 0; d < 3; d++)
            for (uint64_t seed = 1; seed <= 3; seed++) {
                Image *img, *msk, *good, *gmask;
                assert_ok(synthetic_render(c, d, 96, seed, &img, &msk));
                assert_ok(synthetic_render(c, -1, 96, seed, &good, &gmask));
                int on = 0;
                for (int p = 0; p < 96 * 96; p++) {
                    on += msk->data8[p] != 0;
                    assert_int_equal(gmask->data8[p], 0);
                }
                assert_true(on >= 6);
                /* same seed: the normal drawing is the same before the defect,
                 * so outside the mask only the noise differs */
                double in_diff = 0, out_diff = 0;
                int out = 0;
                for (int p = 0; p < 96 * 96; p++) {
                    double dv = 0;
                    for (int k = 0; k < img->channels; k++)
                        dv += abs((int)img->data8[p * img->channels + k] -
                                  (int)good->data8[p * img->channels + k]);
                    dv /= img->channels;
                    if (msk->data8[p]) {
                        in_diff += dv;
                    } else {
                        out_diff += dv;
                        out++;
                    }
                }
                in_diff /= on;
                out_diff /= out;
                if (!(in_diff > 4 * out_diff + 10))
                    fail_msg("%s defect %d seed %d: change inside mask %.1f, outside %.1f",
                             names[c], d, (int)seed, in_diff, out_diff);
                image_free(img);
                image_free(msk);
                image_free(good);
                image_free(gmask);
            }
}

static void test_rerun_and_errors(void **state) {
    (void)state;
    SyntheticConfig cfg = small_config(9);
    assert_ok(synthetic_write(P("f"), &cfg));
    assert_ok(synthetic_write(P("f"), &cfg)); /* complete and identical: nothing to do */
    SyntheticConfig other = small_config(10);
    assert_int_equal(synthetic_write(P("f"), &other), HG_ERR_IO);
    assert_non_null(strstr(hg_last_error(), "already exists"));
    assert_non_null(strstr(hg_last_error(), P("f/disc")));

    /* A regular file where a directory should be. */
    FILE *f = fopen(P("plain"), "w");
    fputs("x", f);
    fclose(f);
    assert_int_equal(synthetic_write(P("plain/sub"), &cfg), HG_ERR_IO);
    assert_non_null(strstr(hg_last_error(), "is not a directory"));
    /* Somewhere nobody can create directories, not even root. */
    assert_int_equal(synthetic_write("/proc/hgad_synthetic_test", &cfg), HG_ERR_IO);
    assert_non_null(strstr(hg_last_error(), "cannot create directory /proc/hgad_synthetic_test"));

    cfg.image_size = 16;
    assert_int_equal(synthetic_write(P("g"), &cfg), HG_ERR_ARG);
    assert_non_null(strstr(hg_last_error(), "image size 16"));
    cfg = small_config(1);
    const char *bad[] = {"teapot"};
    cfg.categories = bad;
    cfg.n_categories = 1;
    assert_int_equal(synthetic_write(P("g"), &cfg), HG_ERR_ARG);
    assert_non_null(strstr(hg_last_error(), "unknown category 'teapot'"));
    Image *img, *msk;
    assert_int_equal(synthetic_render(5, 0, 64, 1, &img, &msk), HG_ERR_ARG);
    assert_int_equal(synthetic_render(0, 3, 64, 1, &img, &msk), HG_ERR_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_layout_and_masks),
        cmocka_unit_test(test_defects_visible),
        cmocka_unit_test(test_rerun_and_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
