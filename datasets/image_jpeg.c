/* JPEG decoding with libjpeg-turbo.
 *
 * libjpeg's default error_exit prints and calls exit(); ours formats the
 * message and longjmps back to the decoder. Warnings that mean the data ended
 * early or is corrupt (libjpeg would otherwise fill the rest with grey) are
 * treated as errors too, so a truncated file never decodes "successfully";
 * harmless ones (e.g. extraneous bytes before a marker) are ignored, as PIL does.
 * Decoding uses libjpeg's defaults (islow IDCT, fancy upsampling), as PIL does,
 * so pixel values agree with PIL's. */
#include "datasets/image.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>

#include <jpeglib.h>
#include <jerror.h>

typedef struct JpegError {
    struct jpeg_error_mgr mgr; /* first, so the mgr pointer is the struct pointer */
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
} JpegError;

static void on_error_exit(j_common_ptr cinfo) {
    JpegError *err = (JpegError *)cinfo->err;
    err->mgr.format_message(cinfo, err->message);
    longjmp(err->jump, 1);
}

static void on_message(j_common_ptr cinfo, int level) {
    if (level >= 0) return; /* trace messages */
    switch (cinfo->err->msg_code) {
    case JWRN_JPEG_EOF:
    case JWRN_HIT_MARKER:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_MUST_RESYNC:
    case JWRN_NOT_SEQUENTIAL:
        on_error_exit(cinfo);
        break;
    default:
        break;
    }
}

Image *image_decode_jpeg(const uint8_t *bytes, size_t size, const char *name) {
    struct jpeg_decompress_struct cinfo;
    JpegError err;
    Image *volatile img = NULL;
    cinfo.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = on_error_exit;
    err.mgr.emit_message = on_message;
    if (setjmp(err.jump)) {
        jpeg_destroy_decompress(&cinfo);
        image_free(img);
        hg_fail(HG_ERR_FORMAT, "image: %s: %s", name, err.message);
        return NULL;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, bytes, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);

    int channels;
    switch (cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE:
        cinfo.out_color_space = JCS_GRAYSCALE;
        channels = 1;
        break;
    case JCS_YCbCr:
    case JCS_RGB:
        cinfo.out_color_space = JCS_RGB;
        channels = 3;
        break;
    default:
        jpeg_destroy_decompress(&cinfo);
        hg_fail(HG_ERR_UNSUPPORTED, "image: %s: CMYK/YCCK JPEG is not supported", name);
        return NULL;
    }
    if (image_check_size(cinfo.image_width, cinfo.image_height, channels, 8, name) != HG_OK ||
        !(img = image_new((int)cinfo.image_width, (int)cinfo.image_height, channels, 8))) {
        jpeg_destroy_decompress(&cinfo);
        return NULL;
    }
    jpeg_start_decompress(&cinfo);
    if ((int)cinfo.output_components != channels || cinfo.output_width != cinfo.image_width ||
        cinfo.output_height != cinfo.image_height) {
        jpeg_destroy_decompress(&cinfo);
        image_free(img);
        hg_fail(HG_ERR_FORMAT, "image: %s: unexpected JPEG output layout", name);
        return NULL;
    }
    size_t row_bytes = image_row_bytes(img);
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = img->data8 + (size_t)cinfo.output_scanline * row_bytes;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return img;
}
