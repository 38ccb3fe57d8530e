/* Image transforms (datasets/transforms.h):
 *  - parity with PIL / torchvision on tests/fixtures/transforms_pil.safetensors
 *    (tools/fixtures/make_transform_fixtures.py): Lanczos, bilinear and nearest
 *    resizes, torchvision's Resize(S) and CenterCrop, ToTensor + Normalize, and
 *    the public code's image and mask pipelines; pixels within 1/255;
 *  - an independent double-precision Lanczos on a 900x900 image (the MVTec size);
 *  - torchvision's size and crop-offset rules against naive formulas;
 *  - error messages. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/image.h"
#include "datasets/transforms.h"
#include "nn/safetensors.h"
#include "tensor/rng.h"
#include "tests/testutil.h"

static SafetensorsFile *open_fixture(void) {
    SafetensorsFile *f = safetensors_open(test_fixture("transforms_pil.safetensors"));
    if (!f) fail_msg("cannot open fixture: %s", hg_last_error());
    return f;
}

/* A U8 (H, W, C) fixture entry as an 8-bit Image. */
static Image *fixture_image(const SafetensorsFile *f, const char *name) {
    Tensor *t = safetensors_load_as_float(f, name);
    assert_ok_ptr(t);
    assert_int_equal(t->ndim, 3);
    Image *img = image_new((int)t->shape[1], (int)t->shape[0], (int)t->shape[2], 8);
    assert_ok_ptr(img);
    const float *v = tensor_data(t);
    for (int64_t i = 0; i < tensor_numel(t); i++) img->data8[i] = (uint8_t)v[i];
    tensor_free(t);
    return img;
}

/* Largest |a - b| over two 8-bit images of the same geometry. */
static int max_abs_diff(const Image *a, const Image *b, int64_t *n_diff) {
    assert_int_equal(a->width, b->width);
    assert_int_equal(a->height, b->height);
    assert_int_equal(a->channels, b->channels);
    int worst = 0;
    *n_diff = 0;
    for (size_t i = 0; i < image_size_bytes(a); i++) {
        int d = abs((int)a->data8[i] - (int)b->data8[i]);
        if (d) (*n_diff)++;
        if (d > worst) worst = d;
    }
    return worst;
}

static const char *SOURCES[] = {"src.rand", "src.grad", "src.grey", "src.mask"};
static const ResampleFilter FILTERS[] = {RESAMPLE_NEAREST, RESAMPLE_BILINEAR, RESAMPLE_LANCZOS};
static const char *FILTER_NAMES[] = {"nearest", "bilinear", "lanczos"};

static void test_pil_parity(void **state) {
    (void)state;
    SafetensorsFile *f = open_fixture();
    int n_cases = 0, n_exact = 0;
    int64_t n_samples = 0, n_off = 0;
    for (int c = 0;; c++) {
        char key[64];
        snprintf(key, sizeof key, "case%02d.config", c);
        if (!safetensors_find(f, key)) break;
        Tensor *cfg = safetensors_load_tensor(f, key);
        assert_ok_ptr(cfg);
        const float *p = tensor_data(cfg);
        int src = (int)p[0], op = (int)p[1], a = (int)p[2], b = (int)p[3], filt = (int)p[4];
        tensor_free(cfg);
        Image *in = fixture_image(f, SOURCES[src]);
        snprintf(key, sizeof key, "case%02d.out", c);
        Image *expected = fixture_image(f, key);

        Image *got = NULL;
        if (op == 0) {
            got = image_resize(in, a, b, FILTERS[filt]);
        } else if (op == 1) {
            got = image_resize_shorter_side(in, a, FILTERS[filt]);
        } else if (op == 2) {
            got = image_center_crop(in, a, b);
        } else {
            Image *r = image_resize_shorter_side(in, a, FILTERS[filt]);
            assert_ok_ptr(r);
            got = image_center_crop(r, b, b);
            image_free(r);
        }
        assert_ok_ptr(got);
        if (got->width != expected->width || got->height != expected->height)
            fail_msg("case %d (%s op %d %s): got %dx%d, PIL %dx%d", c, SOURCES[src], op,
                     FILTER_NAMES[filt], got->width, got->height, expected->width,
                     expected->height);
        int64_t n_diff;
        int worst = max_abs_diff(got, expected, &n_diff);
        if (worst > 1)
            fail_msg("case %d (%s op %d %dx%d %s): max difference %d/255 from PIL", c, SOURCES[src],
                     op, a, b, FILTER_NAMES[filt], worst);
        /* Nearest and crops only move pixels: they must be exact. */
        if (filt == 0 || op == 2) assert_int_equal(n_diff, 0);
        n_exact += n_diff == 0;
        n_off += n_diff;
        n_samples += (int64_t)image_size_bytes(got);
        n_cases++;
        image_free(in);
        image_free(expected);
        image_free(got);
    }
    assert_true(n_cases >= 30);
    print_message("%d/%d PIL cases bit-exact, %lld of %lld samples off by one\n", n_exact, n_cases,
                  (long long)n_off, (long long)n_samples);
    /* Same algorithm and rounding as PIL: only a libm whose sin() differs in
     * the last bit could move a weight across a 2^-22 rounding boundary, so
     * off-by-one samples must be (nearly) absent; rounding negative weights
     * towards zero instead of away from it already gives 14 here. */
    assert_true(n_off * 100000 <= n_samples);
    safetensors_close(f);
}

static void test_normalize_parity(void **state) {
    (void)state;
    SafetensorsFile *f = open_fixture();
    Image *rand = fixture_image(f, "src.rand");
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    Tensor *got = image_to_normalized_tensor(rand, mean, std);
    assert_ok_ptr(got);
    Tensor *expected = safetensors_load_tensor(f, "normalize.out");
    assert_ok_ptr(expected);
    test_assert_close(got, expected, 0, 0); /* same float32 operations, same order */
    /* Without statistics: ToTensor alone, v / 255. */
    Tensor *plain = image_to_normalized_tensor(rand, NULL, NULL);
    assert_ok_ptr(plain);
    const float *pv = tensor_data(plain);
    int64_t plane = (int64_t)rand->width * rand->height;
    for (int64_t i = 0; i < plane; i++)
        for (int c = 0; c < 3; c++)
            assert_true(pv[c * plane + i] == rand->data8[3 * i + c] / 255.0f);
    tensor_free(plain);
    tensor_free(got);
    tensor_free(expected);
    image_free(rand);
    safetensors_close(f);
}

static void test_grey_to_tensor(void **state) {
    (void)state;
    Image *grey = image_new(5, 4, 1, 8);
    assert_ok_ptr(grey);
    for (int i = 0; i < 20; i++) grey->data8[i] = (uint8_t)(13 * i);
    Tensor *t = image_to_normalized_tensor(grey, NULL, NULL);
    assert_ok_ptr(t);
    assert_int_equal(t->shape[0], 3);
    const float *v = tensor_data(t);
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 20; i++) assert_true(v[c * 20 + i] == (float)(13 * i) / 255.0f);
    tensor_free(t);
    image_free(grey);
}

static void test_pipelines(void **state) {
    (void)state;
    SafetensorsFile *f = open_fixture();
    Image *grad = fixture_image(f, "src.grad");
    Image *mask = fixture_image(f, "src.mask");
    Preprocess pp = preprocess_imagenet(40, 24);
    Tensor *img = preprocess_image(grad, &pp);
    Tensor *msk = preprocess_mask(mask, &pp);
    assert_ok_ptr(img);
    assert_ok_ptr(msk);
    Tensor *want_img = safetensors_load_tensor(f, "pipeline.out");
    Tensor *want_msk = safetensors_load_tensor(f, "maskpipe.out");
    /* one 8-bit step, in normalized units */
    test_assert_close(img, want_img, 0, 1.0 / 255 / 0.224 + 1e-6);
    test_assert_close(msk, want_msk, 0, 0);
    tensor_free(img);
    tensor_free(msk);
    tensor_free(want_img);
    tensor_free(want_msk);
    image_free(grad);
    image_free(mask);
    safetensors_close(f);
}

/* ------------------------------------------------------ independent checks */

static double lanczos3(double x) {
    if (x <= -3 || x >= 3) return 0;
    if (x == 0) return 1;
    return 3 * sin(M_PI * x) * sin(M_PI * x / 3) / (M_PI * M_PI * x * x);
}

/* One antialiased pass in double over `n` lines of `len_in` samples (stride
 * `step` between samples, `line` between lines), rounded to 8 bits. */
static void naive_pass(const uint8_t *in, uint8_t *out, int len_in, int len_out, int n,
                       size_t in_step, size_t in_line, size_t out_step, size_t out_line) {
    double scale = (double)len_in / len_out, fs = scale > 1 ? scale : 1;
    for (int l = 0; l < n; l++)
        for (int o = 0; o < len_out; o++) {
            double center = (o + 0.5) * scale, acc = 0, wsum = 0;
            int lo = (int)floor(center - 3 * fs) - 1, hi = (int)ceil(center + 3 * fs) + 1;
            for (int i = lo < 0 ? 0 : lo; i < len_in && i <= hi; i++) {
                double w = lanczos3((i + 0.5 - center) / fs);
                acc += w * in[l * in_line + i * in_step];
                wsum += w;
            }
            double v = floor(acc / wsum + 0.5);
            out[l * out_line + o * out_step] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
}

static void test_lanczos_matches_naive_at_mvtec_size(void **state) {
    (void)state;
    int w = 900, h = 900, s = 256;
    Image *img = image_new(w, h, 3, 8);
    assert_ok_ptr(img);
    /* smooth structure plus noise, like a photograph */
    Rng rng = rng_new(7);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                double v = 128 + 90 * sin(x * 0.02 * (c + 1)) * cos(y * 0.013) +
                           (x > 450 ? 30 : -30) + 12 * rng_normal(&rng);
                img->data8[((size_t)y * w + x) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    Image *got = image_resize(img, s, s, RESAMPLE_LANCZOS);
    assert_ok_ptr(got);
    uint8_t *tmp = malloc((size_t)s * h * 3), *ref = malloc((size_t)s * s * 3);
    for (int c = 0; c < 3; c++) {
        naive_pass(img->data8 + c, tmp + c, w, s, h, 3, (size_t)w * 3, 3, (size_t)s * 3);
        naive_pass(tmp + c, ref + c, h, s, s, (size_t)s * 3, 3, (size_t)s * 3, 3);
    }
    int worst = 0;
    int64_t off = 0;
    for (size_t i = 0; i < (size_t)s * s * 3; i++) {
        int d = abs((int)got->data8[i] - (int)ref[i]);
        worst = d > worst ? d : worst;
        off += d != 0;
    }
    /* Fixed-point weights and two 8-bit roundings vs exact doubles. */
    print_message("naive Lanczos: max difference %d, %lld of %d samples differ\n", worst,
                  (long long)off, s * s * 3);
    assert_true(worst <= 1);
    assert_true(off < (int64_t)s * s * 3 / 20);
    free(tmp);
    free(ref);
    image_free(got);
    image_free(img);
}

static void test_shorter_side_dims(void **state) {
    (void)state;
    /* independent: shorter side -> size, other = floor(size * long / short) */
    static const int cases[][3] = {{900, 900, 256},    {640, 480, 256}, {480, 640, 256},
                                   {1024, 1000, 1024}, {100, 300, 7},   {1600, 1100, 256},
                                   {512, 511, 128},    {37, 3, 5}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int w = cases[i][0], h = cases[i][1], s = cases[i][2], ow, oh;
        resize_shorter_side_dims(w, h, s, &ow, &oh);
        long long sh = w <= h ? w : h, lg = w <= h ? h : w;
        int other = (int)((long long)s * lg / sh); /* exact integer floor */
        assert_int_equal(w <= h ? ow : oh, s);
        assert_int_equal(w <= h ? oh : ow, other);
    }
}

static void test_center_crop_offsets(void **state) {
    (void)state;
    /* A ramp image: each pixel stores its own coordinates, so the crop's
     * origin can be read back. nearbyint rounds half to even like Python. */
    for (int h = 8; h <= 14; h++)
        for (int w = 8; w <= 15; w += 7)
            for (int ch = 3; ch <= h; ch += 2) {
                int cw = ch - 1 > 0 ? ch - 1 : 1;
                if (cw > w) continue;
                Image *img = image_new(w, h, 2, 8);
                for (int y = 0; y < h; y++)
                    for (int x = 0; x < w; x++) {
                        img->data8[(y * w + x) * 2] = (uint8_t)y;
                        img->data8[(y * w + x) * 2 + 1] = (uint8_t)x;
                    }
                Image *c = image_center_crop(img, cw, ch);
                assert_ok_ptr(c);
                int top = (int)nearbyint((h - ch) / 2.0), left = (int)nearbyint((w - cw) / 2.0);
                assert_int_equal(c->data8[0], top);
                assert_int_equal(c->data8[1], left);
                image_free(c);
                image_free(img);
            }
    /* Larger than the image: zero padding, extra row/column at the end. */
    Image *one = image_new(2, 1, 1, 8);
    one->data8[0] = 7;
    one->data8[1] = 9;
    Image *c = image_center_crop(one, 5, 4);
    assert_ok_ptr(c);
    /* pad left (5-2)/2 = 1, top (4-1)/2 = 1 */
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 5; x++) {
            int want = (y == 1 && x == 1) ? 7 : (y == 1 && x == 2) ? 9 : 0;
            assert_int_equal(c->data8[y * 5 + x], want);
        }
    image_free(c);
    image_free(one);
}

static void test_same_size_is_copy(void **state) {
    (void)state;
    Image *img = image_new(6, 5, 3, 8);
    for (size_t i = 0; i < image_size_bytes(img); i++) img->data8[i] = (uint8_t)(i * 37);
    for (int f = 0; f < 3; f++) {
        Image *r = image_resize(img, 6, 5, FILTERS[f]);
        assert_ok_ptr(r);
        assert_memory_equal(r->data8, img->data8, image_size_bytes(img));
        image_free(r);
    }
    image_free(img);
}

static void test_errors(void **state) {
    (void)state;
    assert_null(image_resize(NULL, 4, 4, RESAMPLE_LANCZOS));
    assert_int_equal(hg_last_status(), HG_ERR_ARG);
    Image *img16 = image_new(4, 4, 3, 16);
    assert_null(image_resize(img16, 2, 2, RESAMPLE_LANCZOS));
    assert_int_equal(hg_last_status(), HG_ERR_UNSUPPORTED);
    assert_non_null(strstr(hg_last_error(), "16-bit"));
    image_free(img16);
    Image *img = image_new(4, 4, 3, 8);
    assert_null(image_resize(img, 0, 3, RESAMPLE_BILINEAR));
    assert_non_null(strstr(hg_last_error(), "0x3"));
    assert_null(image_center_crop(img, 3, -1));
    assert_int_equal(hg_last_status(), HG_ERR_ARG);
    Preprocess pp = preprocess_imagenet(0, 8);
    assert_null(preprocess_image(img, &pp));
    assert_non_null(strstr(hg_last_error(), "sizes must be positive"));
    pp = preprocess_imagenet(8, 8);
    pp.std[1] = 0;
    assert_null(preprocess_mask(img, &pp));
    assert_non_null(strstr(hg_last_error(), "channel 1"));
    image_free(img);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pil_parity),
        cmocka_unit_test(test_normalize_parity),
        cmocka_unit_test(test_grey_to_tensor),
        cmocka_unit_test(test_pipelines),
        cmocka_unit_test(test_lanczos_matches_naive_at_mvtec_size),
        cmocka_unit_test(test_shorter_side_dims),
        cmocka_unit_test(test_center_crop_offsets),
        cmocka_unit_test(test_same_size_is_copy),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
