/* cmd_model.c - `facever import-tflite` and `facever model-info`. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cli.h"
#include "model/model.h"
#include "model/model_file.h"
#include "model/tflite.h"

static const char import_usage[] =
    "usage: facever import-tflite IN.tflite OUT.fvm [options]\n\n"
    "Converts a TensorFlow Lite network into a facever model file.\n\n"
    "options:\n"
    "  --name NAME          model name stored in the file (default: file name)\n"
    "  --transpose-input    the net was trained on transposed images (MTCNN)\n"
    "  --embedding TENSOR   output tensor that holds the face embedding\n"
    "  --template HxW       alignment template size the net expects (e.g. 112x112)\n"
    "  --threshold T        default verification threshold on cosine similarity\n"
    "  --pixel-mean M       input = (pixel - M) * S   (default 127.5)\n"
    "  --pixel-scale S      (default 0.0078125)\n";

int fv_cmd_import_tflite(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *name = NULL, *embedding = NULL;
    int transpose = 0, template_h = 0, template_w = 0;
    float threshold = NAN, mean = 127.5f, scale = 1.0f / 128.0f;
    struct fv_error err = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (fv_cli_is_help(a)) {
            fputs(import_usage, stdout);
            return 0;
        } else if (strcmp(a, "--name") == 0 && v) {
            name = v, i++;
        } else if (strcmp(a, "--embedding") == 0 && v) {
            embedding = v, i++;
        } else if (strcmp(a, "--transpose-input") == 0) {
            transpose = 1;
        } else if (strcmp(a, "--template") == 0 && v) {
            if (sscanf(v, "%dx%d", &template_h, &template_w) != 2 || template_h < 1 ||
                template_w < 1 || template_h > 4096 || template_w > 4096) {
                fprintf(stderr, "facever import-tflite: --template needs HxW, got '%s'\n", v);
                return 2;
            }
            i++;
        } else if (strcmp(a, "--threshold") == 0) {
            if (fv_cli_parse_float("import-tflite", a, v, &threshold))
                return 2;
            i++;
        } else if (strcmp(a, "--pixel-mean") == 0) {
            if (fv_cli_parse_float("import-tflite", a, v, &mean))
                return 2;
            i++;
        } else if (strcmp(a, "--pixel-scale") == 0) {
            if (fv_cli_parse_float("import-tflite", a, v, &scale))
                return 2;
            i++;
        } else if (a[0] == '-') {
            fprintf(stderr, "facever import-tflite: unknown or incomplete option '%s'\n%s", a,
                    import_usage);
            return 2;
        } else if (!in) {
            in = a;
        } else if (!out) {
            out = a;
        } else {
            fprintf(stderr, "facever import-tflite: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if (!in || !out) {
        fputs(import_usage, stderr);
        return 2;
    }
    struct fv_graph *g = NULL;
    if (fv_tflite_import_file(in, &g, &err))
        return fv_cli_fail("import-tflite", &err);
    struct fv_model_meta *meta = fv_graph_meta(g);
    if (!name) {
        const char *base = strrchr(in, '/');
        name = base ? base + 1 : in;
    }
    snprintf(meta->name, sizeof meta->name, "%s", name);
    char *dot = strrchr(meta->name, '.');
    if (dot && strcmp(dot, ".tflite") == 0)
        *dot = '\0';
    if (embedding)
        snprintf(meta->embedding, sizeof meta->embedding, "%s", embedding);
    meta->transpose_input = transpose;
    meta->template_h = template_h;
    meta->template_w = template_w;
    meta->threshold = threshold;
    meta->pixel_mean = mean;
    meta->pixel_scale = scale;
    int st = fv_graph_validate(g, &err);
    if (st == FV_OK)
        st = fv_model_file_save(g, out, &err);
    fv_graph_free(g);
    if (st)
        return fv_cli_fail("import-tflite", &err);
    /* Read the file back through the untrusted-input loader before declaring success. */
    struct fv_model *m = NULL;
    if (fv_model_load(out, &m, &err))
        return fv_cli_fail("import-tflite", &err);
    printf("%s: %s, %d nodes, input %dx%dx%d, %.3f GFLOP per image\n", out, name,
           fv_graph_node_count(fv_model_graph(m)), fv_model_meta(m)->input_h,
           fv_model_meta(m)->input_w, fv_model_meta(m)->input_c, fv_model_flops(m, 0, 0) / 1e9);
    fv_model_free(m);
    return 0;
}

int fv_cmd_model_info(int argc, char **argv)
{
    if (argc != 2 || fv_cli_is_help(argv[1])) {
        fputs("usage: facever model-info MODEL.fvm\n", argc == 2 ? stdout : stderr);
        return argc == 2 ? 0 : 2;
    }
    struct fv_error err = {0};
    struct fv_model *m = NULL;
    if (fv_model_load(argv[1], &m, &err))
        return fv_cli_fail("model-info", &err);
    const struct fv_model_meta *meta = fv_model_meta(m);
    struct fv_graph *g = fv_model_graph(m);
    printf("name        %s\n", meta->name);
    printf("input       %dx%dx%d%s\n", meta->input_h, meta->input_w, meta->input_c,
           meta->transpose_input ? " (transposed)" : "");
    printf("pixels      (x - %g) * %g\n", meta->pixel_mean, meta->pixel_scale);
    printf("embedding   %s\n", meta->embedding[0] ? meta->embedding : "-");
    printf("template    %dx%d\n", meta->template_h, meta->template_w);
    if (isnan(meta->threshold))
        printf("threshold   -\n");
    else
        printf("threshold   %.4f\n", meta->threshold);
    printf("GFLOP       %.4f per image\n", fv_model_flops(m, 0, 0) / 1e9);
    printf("outputs    ");
    for (int i = 0; i < fv_graph_output_count(g); i++) {
        const struct fv_tensor_info *t = fv_graph_tensor(g, fv_graph_output(g, i));
        printf(" %s[%dx%dx%d]", t->name, t->h, t->w, t->c);
    }
    printf("\nnodes       %d\n", fv_graph_node_count(g));
    for (int i = 0; i < fv_graph_node_count(g); i++) {
        const struct fv_node *n = fv_graph_node(g, i);
        const struct fv_tensor_info *t = fv_graph_tensor(g, n->output);
        printf("  %-18s %-40s -> %dx%dx%d", fv_op_name(n->op), n->name, t->h, t->w, t->c);
        if (n->op == FV_OP_CONV2D || n->op == FV_OP_DEPTHWISE_CONV2D || n->op == FV_OP_MAX_POOL2D)
            printf("  k%dx%d s%dx%d %s", n->kernel_h, n->kernel_w, n->stride_h, n->stride_w,
                   fv_padding_name(n->padding));
        if (n->activation != FV_ACT_NONE)
            printf(" +%s", fv_activation_name(n->activation));
        printf("\n");
    }
    fv_model_free(m);
    return 0;
}
