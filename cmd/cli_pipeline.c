/* cli_pipeline.c - options shared by the commands that run the face pipeline. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cli.h"
#include "eval/pca.h"

void fv_cli_pipeline_defaults(struct fv_cli_pipeline *o)
{
    memset(o, 0, sizeof *o);
    o->model_path = getenv("FACEVER_MODEL");
    if (o->model_path && !*o->model_path)
        o->model_path = NULL;
    o->pca_path = getenv("FACEVER_PCA");
    if (o->pca_path && !*o->pca_path)
        o->pca_path = NULL;
    fv_pipeline_default_params(&o->params);
    o->policy = FV_FACE_LARGEST;
    o->threshold = NAN;
}

const char fv_cli_pipeline_help[] =
    "  --models DIR         folder with pnet.fvm, rnet.fvm, onet.fvm and the default\n"
    "                       embedding model mobilefacenet.fvm (default: the first of\n"
    "                       $FACEVER_MODELS, ../share/facever/models beside the\n"
    "                       executable and ./models that holds them)\n"
    "  --model FILE         embedding model file (default: DIR/mobilefacenet.fvm)\n"
    "  --pca FILE           PCA projection fitted with 'facever pca fit'\n"
    "  --detect-max-side N  detect on a copy whose longer side is at most N pixels\n"
    "                       (default 640; 0: the full image). Landmarks and crops still\n"
    "                       read finer pixels. Faces under 20 pixels of that copy are\n"
    "                       not found (126 px in a 4032x3024 photo): ask for smaller\n"
    "                       ones with --min-face, which raises the copy's resolution\n"
    "  --min-face PX|P%     smallest face to find, in pixels of the image or as a percentage\n"
    "                       of its shorter side (default: 20 pixels of the copy detection\n"
    "                       runs on, which is 20 pixels of images up to N pixels)\n"
    "  --detect-thresholds P,R,O  MTCNN stage thresholds (default 0.6,0.7,0.7)\n"
    "  --policy P           largest | center | all (default largest)\n"
    "  --max-pixels N       refuse images with more pixels (default 40000000)\n"
    "  --precision P        embedding network arithmetic: auto | fp32 | bf16 (default\n"
    "                       auto: bf16 where the CPU has AVX-512 BF16, else fp32)\n";

int fv_cli_pipeline_option(const char *cmd, struct fv_cli_pipeline *o, int argc, char **argv,
                           int *i)
{
    const char *a = argv[*i];
    const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    long n;
    if (strcmp(a, "--models") == 0 && v) {
        o->models_dir = v;
    } else if (strcmp(a, "--model") == 0 && v) {
        o->model_path = v;
    } else if (strcmp(a, "--pca") == 0 && v) {
        o->pca_path = v;
    } else if (strcmp(a, "--min-face") == 0) {
        size_t len = v ? strlen(v) : 0;
        char *end = NULL;
        double x = len ? strtod(v, &end) : NAN;
        if (len && end == v + len - 1 && v[len - 1] == '%' && x > 0 && x <= 100) {
            o->params.detect.min_face = 0;
            o->params.detect.min_face_relative = (float)(x / 100);
        } else if (len && end == v + len && x >= 12 && x <= 100000) {
            o->params.detect.min_face = (float)x;
            o->params.detect.min_face_relative = 0;
        } else {
            fprintf(stderr,
                    "facever %s: --min-face needs pixels (12 to 100000) or a percentage of the "
                    "shorter side like 5%%\n",
                    cmd);
            return -1;
        }
    } else if (strcmp(a, "--detect-max-side") == 0) {
        if (fv_cli_parse_int(cmd, a, v, 0, 100000, &n))
            return -1;
        if (n != 0 && n < 48) {
            fprintf(stderr, "facever %s: --detect-max-side must be 0 (full size) or at least 48\n",
                    cmd);
            return -1;
        }
        o->params.detect.max_side = (int)n;
    } else if (strcmp(a, "--detect-thresholds") == 0) {
        float *t = o->params.detect.thresholds;
        if (!v || sscanf(v, "%f,%f,%f", &t[0], &t[1], &t[2]) != 3) {
            fprintf(stderr, "facever %s: %s needs three numbers like 0.6,0.7,0.7\n", cmd, a);
            return -1;
        }
    } else if (strcmp(a, "--policy") == 0) {
        int p = v ? fv_face_policy_from_name(v) : -1;
        if (p < 0) {
            fprintf(stderr, "facever %s: --policy must be largest, center or all\n", cmd);
            return -1;
        }
        o->policy = (enum fv_face_policy)p;
    } else if (strcmp(a, "--max-pixels") == 0) {
        if (fv_cli_parse_int(cmd, a, v, 1, 1L << 34, &n))
            return -1;
        o->params.limits.max_pixels = (uint64_t)n;
    } else if (strcmp(a, "--precision") == 0) {
        int p = v ? fv_pipeline_precision_from_name(v) : -1;
        if (p < 0) {
            fprintf(stderr, "facever %s: --precision must be auto, fp32 or bf16\n", cmd);
            return -1;
        }
        o->params.precision = (enum fv_pipeline_precision)p;
    } else if (strcmp(a, "--threshold") == 0) {
        if (fv_cli_parse_float(cmd, a, v, &o->threshold))
            return -1;
        if (!(o->threshold >= -1.0f && o->threshold <= 1.0f)) {
            fprintf(stderr, "facever %s: --threshold must be between -1 and 1\n", cmd);
            return -1;
        }
    } else if (strcmp(a, "--json") == 0) {
        o->json = 1;
        return 1;
    } else {
        return 0;
    }
    (*i)++;
    return 1;
}

enum fv_status fv_cli_pipeline_find_models(struct fv_cli_pipeline *o, int detector_only,
                                           struct fv_error *err)
{
    return fv_models_find(o->models_dir,
                          detector_only || o->model_path ? fv_models_detector_files
                                                         : fv_models_pipeline_files,
                          o->models_found, NULL, err);
}

enum fv_status fv_cli_pipeline_open(struct fv_cli_pipeline *o, struct fv_pipeline **pipe,
                                    struct fv_error *err)
{
    char path[FV_MODELS_PATH_MAX + 32];
    enum fv_status st = fv_cli_pipeline_find_models(o, 0, err);
    if (st)
        return st;
    if (!o->model_path) {
        snprintf(path, sizeof path, "%s/mobilefacenet.fvm", o->models_found);
        o->model_path = path;
    }
    st = fv_pipeline_new(o->models_found, o->model_path, &o->params, pipe, err);
    if (o->model_path == path)
        o->model_path = NULL;
    if (st || !o->pca_path)
        return st;
    struct fv_pca *pca = NULL;
    if ((st = fv_pca_load(o->pca_path, &pca, err)) == FV_OK)
        st = fv_cli_install_pca(*pipe, pca, err);
    fv_pca_free(pca);
    if (st) {
        fv_pipeline_free(*pipe);
        *pipe = NULL;
    }
    return st;
}

enum fv_status fv_cli_install_pca(struct fv_pipeline *pipe, const struct fv_pca *pca,
                                  struct fv_error *err)
{
    size_t d = fv_pca_input_dim(pca), k = fv_pca_output_dim(pca);
    float *components = malloc(d * k * sizeof *components);
    if (!components)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory installing PCA");
    memcpy(components, fv_pca_components(pca), d * k * sizeof *components);
    if (fv_pca_whitened(pca)) {
        const float *eig = fv_pca_eigenvalues(pca);
        for (size_t r = 0; r < k; r++) {
            float s = 1.0f / sqrtf(eig[r] + fv_pca_whiten_epsilon(pca));
            for (size_t c = 0; c < d; c++)
                components[r * d + c] *= s;
        }
    }
    enum fv_status st = fv_pipeline_set_projection(pipe, fv_pca_mean(pca), components, (int)d,
                                                   (int)k, err);
    free(components);
    return st;
}

void fv_cli_print_json(cJSON *root)
{
    char *s = cJSON_Print(root);
    if (s)
        puts(s);
    free(s);
    cJSON_Delete(root);
}
