using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static Llmq.Numerics.Gemm;

namespace Llmq.Numerics;

/// <summary>Packing and the register-blocked micro-kernel behind <see cref="Gemm"/>.
/// <para>Packed A: micro-panels of MR rows, each stored depth-major — element (r, p) at <c>panel[p·MR + r]</c>.
/// Packed B: micro-panels of NR columns — element (p, q) at <c>panel[p·NR + q]</c>. Rows/columns past the matrix edge
/// are zeros, so the kernel always computes a full MR×NR tile.</para></summary>
internal static unsafe class GemmKernels
{
    /// <summary>Packs rows [ic, ic+mc) × depth [pc, pc+kc) of A into MR-row micro-panels at <paramref name="dst"/>.</summary>
    public static void PackA(Operand a, int ic, int mc, int pc, int kc, float* dst) =>
        Pack(a.P, a.RowStride, a.ColStride, ic, mc, pc, kc, MR, dst);

    /// <summary>Packs depth [pc, pc+kc) × columns [jc, jc+nc) of B into NR-column micro-panels at <paramref name="dst"/>.</summary>
    public static void PackB(Operand b, int pc, int kc, int jc, int nc, float* dst) =>
        Pack(b.P, b.ColStride, b.RowStride, jc, nc, pc, kc, NR, dst);

    /// <summary>Packing is the same for both operands once named by their roles: the panel runs across
    /// <paramref name="width"/> lines (A's rows, B's columns) starting at line <paramref name="start"/>; element
    /// (line, depth) sits at src[line·lineStride + depth·depthStride] and goes to panel[depth·width + line].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Pack(float* src, long lineStride, long depthStride, int start, int count, int pc, int kc, int width, float* dst)
    {
        for (int l0 = 0; l0 < count; l0 += width)
        {
            int lines = Math.Min(width, count - l0);
            float* panel = dst + (long)l0 * kc;
            if (lines < width) new Span<float>(panel, width * kc).Clear();
            float* origin = src + (start + l0) * lineStride + pc * depthStride;
            if (lineStride == 1)
            {
                // Lines adjacent in memory (A·B's B, XᵀX's both sides): one contiguous copy per depth step.
                if (lines == width && Vector256.IsHardwareAccelerated)
                {
                    for (int p = 0; p < kc; p++)
                        for (int l = 0; l < width; l += 8)
                            Vector256.Load(origin + p * depthStride + l).Store(panel + p * width + l);
                }
                else
                {
                    for (int p = 0; p < kc; p++)
                        new ReadOnlySpan<float>(origin + p * depthStride, lines).CopyTo(new Span<float>(panel + p * width, lines));
                }
            }
            else if (depthStride == 1)
            {
                // Depth adjacent (A's rows, a Linear weight's rows): a transpose, 8×8 blocks at a time where AVX allows.
                int p0 = 0;
                if (lines == width && Avx.IsSupported)
                {
                    for (; p0 + 8 <= kc; p0 += 8)
                        for (int l = 0; l < width; l += 8)
                            Transpose8x8(origin + l * lineStride + p0, lineStride, panel + p0 * width + l, width);
                }
                for (int l = 0; l < lines; l++)
                {
                    float* line = origin + l * lineStride;
                    for (int p = p0; p < kc; p++) panel[p * width + l] = line[p];
                }
            }
            else
            {
                for (int l = 0; l < lines; l++)
                    for (int p = 0; p < kc; p++) panel[p * width + l] = origin[l * lineStride + p * depthStride];
            }
        }
    }

    /// <summary>dst[j·dstStride + i] = src[i·srcStride + j] for i, j &lt; 8: unpack pairs, shuffle quads, swap halves.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Transpose8x8(float* src, long srcStride, float* dst, int dstStride)
    {
        var r0 = Avx.LoadVector256(src); var r1 = Avx.LoadVector256(src + srcStride);
        var r2 = Avx.LoadVector256(src + 2 * srcStride); var r3 = Avx.LoadVector256(src + 3 * srcStride);
        var r4 = Avx.LoadVector256(src + 4 * srcStride); var r5 = Avx.LoadVector256(src + 5 * srcStride);
        var r6 = Avx.LoadVector256(src + 6 * srcStride); var r7 = Avx.LoadVector256(src + 7 * srcStride);
        var t0 = Avx.UnpackLow(r0, r1); var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3); var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5); var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7); var t7 = Avx.UnpackHigh(r6, r7);
        // s0 holds column 0 of rows 0–3 in its low half and column 4 in its high half; s1 columns 1/5, s2 2/6, s3 3/7.
        var s0 = Avx.Shuffle(t0, t2, 0x44); var s1 = Avx.Shuffle(t0, t2, 0xEE);
        var s2 = Avx.Shuffle(t1, t3, 0x44); var s3 = Avx.Shuffle(t1, t3, 0xEE);
        var s4 = Avx.Shuffle(t4, t6, 0x44); var s5 = Avx.Shuffle(t4, t6, 0xEE);
        var s6 = Avx.Shuffle(t5, t7, 0x44); var s7 = Avx.Shuffle(t5, t7, 0xEE);
        Avx.Store(dst, Avx.Permute2x128(s0, s4, 0x20));
        Avx.Store(dst + dstStride, Avx.Permute2x128(s1, s5, 0x20));
        Avx.Store(dst + 2 * dstStride, Avx.Permute2x128(s2, s6, 0x20));
        Avx.Store(dst + 3 * dstStride, Avx.Permute2x128(s3, s7, 0x20));
        Avx.Store(dst + 4 * dstStride, Avx.Permute2x128(s0, s4, 0x31));
        Avx.Store(dst + 5 * dstStride, Avx.Permute2x128(s1, s5, 0x31));
        Avx.Store(dst + 6 * dstStride, Avx.Permute2x128(s2, s6, 0x31));
        Avx.Store(dst + 7 * dstStride, Avx.Permute2x128(s3, s7, 0x31));
    }

    /// <summary>C[MR×NR tile, row stride ldc] = (add ? C : 0) + alpha · (packed A micro-panel · packed B micro-panel)
    /// over depth kc. The instruction set is chosen here, once; the JIT drops the branches that cannot be taken.</summary>
    public static void MicroKernel(int kc, float* a, float* b, float* c, int ldc, float alpha, bool add)
    {
        if (Vector512.IsHardwareAccelerated) Kernel512(kc, a, b, c, ldc, alpha, add);
        else if (Vector256.IsHardwareAccelerated)
        {
            // 8×32 as four 4×16 quarters: 8 accumulators each, within AVX2's 16 registers.
            for (int rh = 0; rh < MR; rh += 4)
                for (int ch = 0; ch < NR; ch += 16)
                    Kernel256Quarter(kc, a + rh, b + ch, c + (long)rh * ldc + ch, ldc, alpha, add);
        }
        else KernelScalar(kc, a, b, c, ldc, alpha, add);
    }

    /// <summary>8×32 tile in 16 zmm accumulators: per depth step two loads of B, eight broadcasts of A, sixteen FMAs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Kernel512(int kc, float* a, float* b, float* c, int ldc, float alpha, bool add)
    {
        PrefetchTile(c, ldc);
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default,
            c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default,
            c60 = default, c61 = default, c70 = default, c71 = default;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector512.Load(b);
            var b1 = Vector512.Load(b + 16);
            var x = Vector512.Create(a[0]); c00 = Vector512.FusedMultiplyAdd(x, b0, c00); c01 = Vector512.FusedMultiplyAdd(x, b1, c01);
            x = Vector512.Create(a[1]); c10 = Vector512.FusedMultiplyAdd(x, b0, c10); c11 = Vector512.FusedMultiplyAdd(x, b1, c11);
            x = Vector512.Create(a[2]); c20 = Vector512.FusedMultiplyAdd(x, b0, c20); c21 = Vector512.FusedMultiplyAdd(x, b1, c21);
            x = Vector512.Create(a[3]); c30 = Vector512.FusedMultiplyAdd(x, b0, c30); c31 = Vector512.FusedMultiplyAdd(x, b1, c31);
            x = Vector512.Create(a[4]); c40 = Vector512.FusedMultiplyAdd(x, b0, c40); c41 = Vector512.FusedMultiplyAdd(x, b1, c41);
            x = Vector512.Create(a[5]); c50 = Vector512.FusedMultiplyAdd(x, b0, c50); c51 = Vector512.FusedMultiplyAdd(x, b1, c51);
            x = Vector512.Create(a[6]); c60 = Vector512.FusedMultiplyAdd(x, b0, c60); c61 = Vector512.FusedMultiplyAdd(x, b1, c61);
            x = Vector512.Create(a[7]); c70 = Vector512.FusedMultiplyAdd(x, b0, c70); c71 = Vector512.FusedMultiplyAdd(x, b1, c71);
            a += MR;
            b += NR;
        }
        var s = Vector512.Create(alpha);
        Put(c, c00, s, add); Put(c + 16, c01, s, add); c += ldc;
        Put(c, c10, s, add); Put(c + 16, c11, s, add); c += ldc;
        Put(c, c20, s, add); Put(c + 16, c21, s, add); c += ldc;
        Put(c, c30, s, add); Put(c + 16, c31, s, add); c += ldc;
        Put(c, c40, s, add); Put(c + 16, c41, s, add); c += ldc;
        Put(c, c50, s, add); Put(c + 16, c51, s, add); c += ldc;
        Put(c, c60, s, add); Put(c + 16, c61, s, add); c += ldc;
        Put(c, c70, s, add); Put(c + 16, c71, s, add);
    }

    /// <summary>C is far bigger than the caches; its tile is needed only after the depth loop, too late for the
    /// out-of-order window to hide the misses. Asking for it first overlaps them with the FMAs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void PrefetchTile(float* c, int ldc)
    {
        if (!Sse.IsSupported) return;
        for (int r = 0; r < MR; r++, c += ldc)
        {
            Sse.Prefetch0(c);
            Sse.Prefetch0(c + NR - 1);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Put(float* c, Vector512<float> acc, Vector512<float> alpha, bool add) =>
        (add ? Vector512.FusedMultiplyAdd(acc, alpha, Vector512.Load(c)) : acc * alpha).Store(c);

    /// <summary>A 4×16 quarter of the tile with ymm registers; <paramref name="a"/> and <paramref name="b"/> point into the
    /// full-width packed panels (strides MR and NR).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Kernel256Quarter(int kc, float* a, float* b, float* c, int ldc, float alpha, bool add)
    {
        PrefetchTile(c, ldc);
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default,
            c20 = default, c21 = default, c30 = default, c31 = default;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector256.Load(b);
            var b1 = Vector256.Load(b + 8);
            var x = Vector256.Create(a[0]); c00 = Vector256.FusedMultiplyAdd(x, b0, c00); c01 = Vector256.FusedMultiplyAdd(x, b1, c01);
            x = Vector256.Create(a[1]); c10 = Vector256.FusedMultiplyAdd(x, b0, c10); c11 = Vector256.FusedMultiplyAdd(x, b1, c11);
            x = Vector256.Create(a[2]); c20 = Vector256.FusedMultiplyAdd(x, b0, c20); c21 = Vector256.FusedMultiplyAdd(x, b1, c21);
            x = Vector256.Create(a[3]); c30 = Vector256.FusedMultiplyAdd(x, b0, c30); c31 = Vector256.FusedMultiplyAdd(x, b1, c31);
            a += MR;
            b += NR;
        }
        var s = Vector256.Create(alpha);
        Put(c, c00, s, add); Put(c + 8, c01, s, add); c += ldc;
        Put(c, c10, s, add); Put(c + 8, c11, s, add); c += ldc;
        Put(c, c20, s, add); Put(c + 8, c21, s, add); c += ldc;
        Put(c, c30, s, add); Put(c + 8, c31, s, add);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Put(float* c, Vector256<float> acc, Vector256<float> alpha, bool add) =>
        (add ? Vector256.FusedMultiplyAdd(acc, alpha, Vector256.Load(c)) : acc * alpha).Store(c);

    /// <summary>Portable fallback (no SIMD, e.g. DOTNET_EnableHWIntrinsic=0).</summary>
    static void KernelScalar(int kc, float* a, float* b, float* c, int ldc, float alpha, bool add)
    {
        float* acc = stackalloc float[MR * NR];
        new Span<float>(acc, MR * NR).Clear();
        for (int p = 0; p < kc; p++, a += MR, b += NR)
            for (int r = 0; r < MR; r++)
            {
                float x = a[r];
                float* row = acc + r * NR;
                for (int q = 0; q < NR; q++) row[q] += x * b[q];
            }
        for (int r = 0; r < MR; r++)
            for (int q = 0; q < NR; q++)
            {
                float* e = c + (long)r * ldc + q;
                *e = add ? *e + alpha * acc[r * NR + q] : alpha * acc[r * NR + q];
            }
    }
}
