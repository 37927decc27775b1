// Generates ggml_blocks.bin: llama.cpp's own quantizer output for a fixed input, used by GgufBlockVectorTests.
// Build against a llama.cpp libggml-base.so (e.g. the one in the npm package @node-llama-cpp/linux-x64):
//   gcc -O1 -o gen gen_block_vectors.c -ldl && ./gen path/to/libggml-base.so ggml_blocks.bin
// It calls only ggml's public API (ggml_quantize_chunk, dequantize_row_*); no ggml code is reproduced here.
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef size_t (*quantize_chunk_fn)(int type, const float *src, void *dst, int64_t start, int64_t nrows, int64_t n_per_row, const float *imatrix);
typedef void (*dequant_fn)(const void *x, float *y, int64_t k);
typedef size_t (*row_size_fn)(int type, int64_t ne);

enum { ROWS = 6, COLS = 512 };

static uint64_t state = 0x9E3779B97F4A7C15ull;
static double uniform(void) { state = state * 6364136223846793005ull + 1442695040888963407ull; return (double)(state >> 11) / 9007199254740992.0; }
static float gauss(void) { double u = uniform() + 1e-12, v = uniform(); return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v)); }

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s libggml-base.so out.bin\n", argv[0]); return 2; }
    void *lib = dlopen(argv[1], RTLD_NOW);
    if (!lib) { fprintf(stderr, "%s\n", dlerror()); return 1; }
    quantize_chunk_fn quantize = (quantize_chunk_fn)dlsym(lib, "ggml_quantize_chunk");
    row_size_fn row_size = (row_size_fn)dlsym(lib, "ggml_row_size");

    static float x[ROWS * COLS], imatrix[COLS];
    // row 0: gaussian weights; row 1: gaussian with outliers; row 2: first 256 zero, then a ramp;
    // row 3: tiny magnitudes (below GROUP_MAX_EPS in places); row 4: all non-negative; row 5: constant blocks + sign flips.
    for (int j = 0; j < COLS; j++) {
        x[0 * COLS + j] = 0.02f * gauss();
        x[1 * COLS + j] = 0.05f * gauss() * (j % 37 == 0 ? 20.0f : 1.0f);
        x[2 * COLS + j] = j < 256 ? 0.0f : (float)(j - 384) / 64.0f;
        x[3 * COLS + j] = (j < 128 ? 1e-17f : 1e-3f) * gauss();
        x[4 * COLS + j] = fabsf(gauss());
        x[5 * COLS + j] = (j / 32) % 2 ? 0.75f : -0.5f * (j % 3 ? 1.0f : -1.0f);
    }
    for (int j = 0; j < COLS; j++) imatrix[j] = 0.1f + gauss() * gauss();

    static const struct { int type; const char *dequant; } types[] = {
        {2, "dequantize_row_q4_0"}, {3, "dequantize_row_q4_1"}, {6, "dequantize_row_q5_0"}, {7, "dequantize_row_q5_1"},
        {8, "dequantize_row_q8_0"}, {10, "dequantize_row_q2_K"}, {11, "dequantize_row_q3_K"}, {12, "dequantize_row_q4_K"},
        {13, "dequantize_row_q5_K"}, {14, "dequantize_row_q6_K"}, {1, NULL}, {30, NULL},
    };
    const int ntypes = sizeof(types) / sizeof(types[0]);

    FILE *f = fopen(argv[2], "wb");
    uint32_t hdr[3] = {0x3156514c /* "LQV1" */, ROWS, COLS};
    fwrite(hdr, 4, 3, f);
    fwrite(x, 4, ROWS * COLS, f);
    fwrite(imatrix, 4, COLS, f);
    uint32_t ncases = ntypes * 2;
    fwrite(&ncases, 4, 1, f);
    static unsigned char out[ROWS * COLS * 4];
    static float deq[ROWS * COLS];
    for (int t = 0; t < ntypes; t++) {
        for (int w = 0; w < 2; w++) {
            size_t n = quantize(types[t].type, x, out, 0, ROWS, COLS, w ? imatrix : NULL);
            if (n != ROWS * row_size(types[t].type, COLS)) { fprintf(stderr, "size mismatch\n"); return 1; }
            uint32_t has_deq = types[t].dequant && !w;
            uint32_t rec[4] = {(uint32_t)types[t].type, (uint32_t)w, (uint32_t)n, has_deq};
            fwrite(rec, 4, 4, f);
            fwrite(out, 1, n, f);
            if (has_deq) {
                dequant_fn dq = (dequant_fn)dlsym(lib, types[t].dequant);
                dq(out, deq, ROWS * COLS);
                fwrite(deq, 4, ROWS * COLS, f);
            }
        }
    }
    fclose(f);
    return 0;
}
