/* Image transforms of the preprocessing pipeline (spec/hgad.md section 2).
 *
 * Each function reproduces, on 8-bit images, the PIL / torchvision call named
 * beside it, so that a model sees the same numbers as the public PyTorch code:
 *
 *   image: Resize(S, Image.LANCZOS) -> CenterCrop(S) -> ToTensor -> Normalize(mean, std)
 *   mask:  Resize(M, Image.NEAREST) -> CenterCrop(M) -> ToTensor -> (value != 0)
 *
 * Images are the Image of datasets/image.h with bit_depth 8 and 1..4
 * channels; every channel is filtered alike. (PIL premultiplies alpha for LA
 * and RGBA before filtering; convert to grey or RGB first, as the loaders do.)
 * Failures return NULL with the reason in hg_last_error(). */
#ifndef HG_TRANSFORMS_H
#define HG_TRANSFORMS_H

#include "datasets/image.h"
#include "tensor/tensor.h"

typedef enum {
    RESAMPLE_NEAREST,  /* PIL Image.NEAREST */
    RESAMPLE_BILINEAR, /* PIL Image.BILINEAR (triangle filter, antialiased) */
    RESAMPLE_LANCZOS,  /* PIL Image.LANCZOS (3-lobe Lanczos, antialiased) */
} ResampleFilter;

/* PIL's img.resize((width, height), filter), bit-exact.
 * Bilinear and Lanczos follow PIL's Resample.c: a separable filter whose
 * support grows with the reduction factor (support 3 * max(1, in / out) for
 * Lanczos, so downscaling is antialiased), applied horizontally then
 * vertically; per output pixel the weights are normalized to sum 1, rounded to
 * 22-bit fixed point, and each pass rounds and clips its result to 8 bits.
 * Nearest follows PIL's affine scaling: source index floor((x + 0.5) * in / out),
 * with the position accumulated step by step in double as PIL does.
 * The same size gives a copy. */
Image *image_resize(const Image *img, int width, int height, ResampleFilter filter);

/* Output size of torchvision's Resize(size) for a width x height image: the
 * shorter side becomes `size`, the other int(size * long / short) (truncated);
 * a square stays square. */
void resize_shorter_side_dims(int width, int height, int size, int *out_width, int *out_height);
/* torchvision's Resize(size, filter) on a PIL image. */
Image *image_resize_shorter_side(const Image *img, int size, ResampleFilter filter);

/* torchvision's CenterCrop((height, width)): the window starts at
 * top = int(round((H - height) / 2.0)), left likewise, with Python's
 * round-half-to-even. A crop larger than the image first pads it with zeros,
 * (height - H) / 2 rows on top and the rest below (columns likewise), as
 * torchvision does. */
Image *image_center_crop(const Image *img, int width, int height);

/* ToTensor then Normalize: a float32 (3, H, W) tensor with
 * x = (v / 255 - mean[c]) / std[c], in float32 in that order as torchvision
 * computes it. Grey images are replicated to 3 channels and alpha is dropped
 * (image_to_rgb8). mean and std may be NULL for plain ToTensor (x = v / 255). */
Tensor *image_to_normalized_tensor(const Image *img, const float mean[3], const float std[3]);

/* ---- the whole pipeline ---- */

typedef struct Preprocess {
    int img_size;  /* S: the shorter side is resized to S (Lanczos) */
    int crop_size; /* then a centered crop_size x crop_size window; the public code uses S */
    int msk_size;  /* M: masks, nearest resize of the shorter side to M then an M x M crop */
    float mean[3], std[3];
} Preprocess;

/* ImageNet statistics (0.485, 0.456, 0.406) / (0.229, 0.224, 0.225), crop = S. */
Preprocess preprocess_imagenet(int img_size, int msk_size);
/* HG_OK when the sizes are positive and the std entries nonzero. */
hg_status preprocess_check(const Preprocess *pp);

/* Any decoded image -> (3, crop, crop) normalized tensor (8-bit RGB first, as
 * PIL's convert('RGB')). */
Tensor *preprocess_image(const Image *img, const Preprocess *pp);
/* Any decoded mask -> (1, M, M) tensor of 0/1: grey first (PIL's convert('L')
 * when it has colour), nearest resize, center crop, then 1 where the value is
 * nonzero. Nonzero is the public code's rule: its masks become bool(mask / 255)
 * at evaluation, and VisA / MVTec 3D masks are explicitly set to 255 where
 * nonzero; for 0/255 masks it equals "> 0.5 after ToTensor". */
Tensor *preprocess_mask(const Image *mask, const Preprocess *pp);

#endif
