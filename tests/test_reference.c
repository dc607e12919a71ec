/* test_reference.c - imported networks against an independent float64 interpreter.
 *
 * tests/fixtures/tflite-reference-outputs.json holds the outputs of the four TFLite
 * networks for the input x[i] = sin(0.001 i) (flat NHWC index i), computed op by op
 * in float64 by an interpreter written independently of this project. Each of our
 * outputs must be within 1e-4 of the reference, relative to the reference's largest
 * magnitude, at every CPU level this machine supports (each level's kernels, fp32).
 * The models are the ones `make models` writes into models/.
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/model.h"
#include "model/model_file.h"
#include "tests/levels.h"

static cJSON *load_reference(void)
{
    uint8_t *data = NULL;
    size_t size = 0;
    struct fv_error err = {0};
    cr_assert_eq(fv_read_file("tests/fixtures/tflite-reference-outputs.json", 1 << 22, &data,
                              &size, &err),
                 FV_OK, "%s", err.message);
    cJSON *root = cJSON_ParseWithLength((const char *)data, size);
    free(data);
    cr_assert_not_null(root);
    return root;
}

static void check_model(const char *tflite_name, const char *model_path)
{
    if (access(model_path, R_OK) != 0)
        cr_skip_test("%s is missing: run `make models`", model_path);
    cJSON *root = load_reference();
    cJSON *ref = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "models"), tflite_name);
    cr_assert_not_null(ref);
    cJSON *shape = cJSON_GetObjectItem(ref, "input_shape");
    int n = cJSON_GetArrayItem(shape, 0)->valueint, h = cJSON_GetArrayItem(shape, 1)->valueint,
        w = cJSON_GetArrayItem(shape, 2)->valueint, c = cJSON_GetArrayItem(shape, 3)->valueint;
    size_t count = (size_t)n * h * w * c;
    float *input = malloc(count * sizeof *input);
    for (size_t i = 0; i < count; i++)
        input[i] = (float)sin(0.001 * (double)i);

    struct fv_error err = {0};
    struct fv_model *m = NULL;
    cr_assert_eq(fv_model_load(model_path, &m, &err), FV_OK, "%s", err.message);
    cr_assert_eq(fv_model_meta(m)->input_c, c);
    const struct fv_kernels *levels[FV_CPU_LEVEL_COUNT];
    int n_levels = test_levels(levels);
    for (int li = 0; li < n_levels; li++) {
    const char *level = levels[li]->name;
    cr_assert_eq(fv_model_set_cpu_level(m, levels[li]->level, &err), FV_OK, "%s", err.message);
    cr_assert_eq(fv_model_cpu_level(m), levels[li]->level);
    struct fv_context *ctx = NULL;
    cr_assert_eq(fv_context_new(m, n, h, w, &ctx, &err), FV_OK, "%s", err.message);
    cr_assert_eq(fv_context_run(ctx, input, n, h, w, &err), FV_OK, "%s", err.message);

    cJSON *out;
    int checked = 0;
    cJSON_ArrayForEach(out, cJSON_GetObjectItem(ref, "outputs"))
    {
        int t = fv_model_find_tensor(m, out->string);
        cr_assert_geq(t, 0, "%s: output '%s' not in the imported model", tflite_name,
                      out->string);
        int got_shape[4];
        const float *got = fv_context_tensor(ctx, t, got_shape);
        cr_assert_not_null(got, "%s: output '%s' was not kept", tflite_name, out->string);
        cJSON *values = cJSON_GetObjectItem(out, "values");
        int nv = cJSON_GetArraySize(values);
        cr_assert_eq((size_t)nv, (size_t)got_shape[0] * got_shape[1] * got_shape[2] * got_shape[3],
                     "%s: '%s' has %d reference values", tflite_name, out->string, nv);
        double max_ref = 0.0, max_diff = 0.0;
        int i = 0;
        cJSON *v;
        cJSON_ArrayForEach(v, values)
        {
            double diff = fabs(v->valuedouble - got[i++]);
            max_diff = diff > max_diff ? diff : max_diff;
            max_ref = fabs(v->valuedouble) > max_ref ? fabs(v->valuedouble) : max_ref;
        }
        cr_expect(max_diff <= 1e-4 * max_ref,
                  "%s at %s: '%s' differs by %.3g (relative %.3g) from the reference",
                  tflite_name, level, out->string, max_diff, max_diff / max_ref);
        checked++;
    }
    cr_expect_geq(checked, 1);
    fv_context_free(ctx);
    }
    fv_model_free(m);
    free(input);
    cJSON_Delete(root);
}

Test(reference, mobilefacenet) { check_model("MobileFaceNet.tflite", "models/mobilefacenet.fvm"); }
Test(reference, pnet) { check_model("pnet.tflite", "models/pnet.fvm"); }
Test(reference, rnet) { check_model("rnet.tflite", "models/rnet.fvm"); }
Test(reference, onet) { check_model("onet.tflite", "models/onet.fvm"); }
