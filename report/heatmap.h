/* Anomaly heat maps drawn over the inspected image.
 *
 * heatmap_overlay() stretches a score map (any size) to the image with
 * bilinear interpolation (half-pixel centres, as torch's
 * interpolate(align_corners=False) and cv2.resize), colours it with Turbo (a
 * perceptual rainbow: dark blue for low scores through green and yellow to
 * dark red for high ones), blends it over the image and, when a ground-truth
 * mask is given, outlines the mask with a 2-pixel contour: white on the mask's
 * own edge pixels, black on the pixels just outside, so it shows on dark and
 * bright backgrounds alike.
 *
 * Used for the eval outputs; depends only on datasets/ (Image). */
#ifndef HG_REPORT_HEATMAP_H
#define HG_REPORT_HEATMAP_H

#include <stdint.h>

#include "datasets/image.h"

/* Turbo colour of t in [0, 1] (clamped; NaN gives t = 0) into rgb[3]. */
void heatmap_color(double t, uint8_t rgb[3]);

/* A new RGB 8-bit image the size of `image` (any channels/depth; converted
 * like image_to_rgb8()):
 *   out = (1 - alpha) image + alpha turbo((map - vmin) / (vmax - vmin))
 * with the normalized score clamped to [0, 1] (all 0 when vmax <= vmin) and
 * NaN scores leaving the image pixel as it is. `map` is map_h x map_w,
 * row-major. `mask` is NULL or map_h x map_w too, nonzero = anomalous; it is
 * enlarged to the image by nearest neighbour, then its contour is drawn: a
 * mask pixel with a 4-neighbour outside the mask turns white, a non-mask pixel
 * with a 4-neighbour inside the mask turns black (the image border itself is
 * not a contour). alpha is in [0, 1]. NULL on bad arguments. */
Image *heatmap_overlay(const Image *image, const float *map, int map_h, int map_w, float vmin,
                       float vmax, const uint8_t *mask, float alpha);

/* Side-by-side composite for eval outputs: image | overlay | mask, separated
 * by HEATMAP_GAP white pixels. The overlay must have the image's size; the
 * mask (mask_h x mask_w, nonzero = anomalous, enlarged by nearest neighbour)
 * is drawn white on black; with mask NULL the third panel is left out. */
#define HEATMAP_GAP 4
Image *heatmap_panels(const Image *image, const Image *overlay, const uint8_t *mask, int mask_h,
                      int mask_w);

#endif
