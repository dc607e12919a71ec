/* make_faces.c - two LFW-like 250x250 face photos and a /v1/verify body for `make loadtest`.
 *
 *   build/tests/load/make_faces models tests/data/sample1.jpg OUT_DIR
 *
 * Finds the faces of the photo with the project's MTCNN, cuts a square of 2.2x
 * the box around each of the two best (different people), resizes it to
 * 250x250 (about the scale of LFW's deep-funneled images) and writes
 * OUT_DIR/face1.jpg, OUT_DIR/face2.jpg and OUT_DIR/verify.json, the JSON body
 * {"image1": base64, "image2": base64} the load generator sends.
 * Exit status 0, or 1 with a message on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/base64.h"
#include "model/model_file.h"
#include "pipeline/detect.h"
#include "pipeline/image.h"

#define SIDE 250
#define MARGIN 2.2f

static int write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int ok = fwrite(data, 1, size, f) == size;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* A SIDE x SIDE JPEG of the face's surroundings; *out malloc'd. */
static enum fv_status face_photo(const struct fv_image *img, const struct fv_face *face,
                                 uint8_t **out, size_t *size, struct fv_error *err)
{
    float cx = (face->box[0] + face->box[2]) / 2, cy = (face->box[1] + face->box[3]) / 2;
    float w = face->box[2] - face->box[0], h = face->box[3] - face->box[1];
    int side = (int)(MARGIN * (w > h ? w : h));
    struct fv_image *crop = fv_image_crop(img, (int)(cx - side / 2.0f), (int)(cy - side / 2.0f),
                                          side, side);
    struct fv_image *small = NULL;
    if (!crop)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory cropping");
    enum fv_status st = fv_image_resize(crop, SIDE, SIDE, &small, err);
    if (!st)
        st = fv_image_encode_jpeg(small, 92, out, size, err);
    fv_image_free(crop);
    fv_image_free(small);
    return st;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: make_faces MODELS_DIR PHOTO OUT_DIR\n");
        return 1;
    }
    struct fv_error err = {0};
    struct fv_detector *det = NULL;
    struct fv_detector_context *ctx = NULL;
    struct fv_image *img = NULL;
    struct fv_face *faces = NULL;
    uint8_t *jpeg[2] = {NULL, NULL};
    size_t jpeg_size[2] = {0, 0};
    char *b64[2] = {NULL, NULL};
    char path[4096];
    int n = 0, rc = 1;
    struct fv_detect_params params;
    fv_detect_default_params(&params);
    if (fv_detector_load(argv[1], &det, &err) || fv_detector_context_new(det, &ctx, &err) ||
        fv_image_load(argv[2], NULL, &img, &err) || fv_detect(ctx, img, &params, &faces, &n, &err))
        goto done;
    if (n < 2) {
        fv_error_set(&err, FV_ERR_NO_FACE, "%s: need two faces, found %d", argv[2], n);
        goto done;
    }
    for (int i = 0; i < 2; i++) {
        if (face_photo(img, &faces[i], &jpeg[i], &jpeg_size[i], &err))
            goto done;
        snprintf(path, sizeof path, "%s/face%d.jpg", argv[3], i + 1);
        if (write_file(path, jpeg[i], jpeg_size[i])) {
            fv_error_set(&err, FV_ERR_IO, "cannot write %s", path);
            goto done;
        }
        if (!(b64[i] = fv_base64_encode(jpeg[i], jpeg_size[i]))) {
            fv_error_set(&err, FV_ERR_NOMEM, "out of memory");
            goto done;
        }
    }
    snprintf(path, sizeof path, "%s/verify.json", argv[3]);
    FILE *f = fopen(path, "wb");
    if (!f) {
        fv_error_set(&err, FV_ERR_IO, "cannot write %s", path);
        goto done;
    }
    fprintf(f, "{\"image1\":\"%s\",\"image2\":\"%s\"}", b64[0], b64[1]);
    if (fclose(f) != 0) {
        fv_error_set(&err, FV_ERR_IO, "cannot write %s", path);
        goto done;
    }
    printf("make_faces: %d faces in %s; wrote %dx%d face1.jpg (%zu bytes), face2.jpg (%zu bytes) "
           "and verify.json to %s\n",
           n, argv[2], SIDE, SIDE, jpeg_size[0], jpeg_size[1], argv[3]);
    rc = 0;
done:
    if (rc)
        fprintf(stderr, "make_faces: %s\n", err.message[0] ? err.message : fv_status_str(err.status));
    for (int i = 0; i < 2; i++) {
        free(jpeg[i]);
        free(b64[i]);
    }
    free(faces);
    fv_image_free(img);
    fv_detector_context_free(ctx);
    fv_detector_free(det);
    return rc;
}
