namespace Llmq.Tests.Models;

/// <summary>A deliberately plain decoder forward in double precision, written from the Hugging Face modeling code's
/// formulas with nothing shared with Llmq.Models: the yardstick the fast forward is checked against.
/// Biases and q/k norms are used whenever their tensors exist.</summary>
public static class ReferenceDecoder
{
    /// <summary>Logits [batch · seqLen × vocab]; each sample starts at position 0.</summary>
    public static double[] Forward(InMemoryTensors w, TinySpec s, int[] tokens, int batch, int seqLen)
    {
        int n = tokens.Length, hd = s.HeadDim;
        var hidden = new double[n][];
        for (int t = 0; t < n; t++)
            hidden[t] = w["model.embed_tokens.weight"].Skip(tokens[t] * s.Hidden).Take(s.Hidden).Select(x => (double)x).ToArray();

        for (int l = 0; l < s.Layers; l++)
        {
            var p = $"model.layers.{l}.";
            var x = hidden.Select(h => Norm(h, w[p + "input_layernorm.weight"], s.Eps)).ToArray();
            var q = x.Select(r => Linear(w, p + "self_attn.q_proj", r)).ToArray();
            var k = x.Select(r => Linear(w, p + "self_attn.k_proj", r)).ToArray();
            var v = x.Select(r => Linear(w, p + "self_attn.v_proj", r)).ToArray();
            for (int t = 0; t < n; t++)
            {
                int pos = t % seqLen;
                for (int h = 0; h < s.Heads; h++) Head(w, p + "self_attn.q_norm.weight", q[t], h * hd, hd, pos, s);
                for (int h = 0; h < s.KvHeads; h++) Head(w, p + "self_attn.k_norm.weight", k[t], h * hd, hd, pos, s);
            }
            var attention = new double[n][];
            for (int t = 0; t < n; t++)
            {
                attention[t] = new double[s.Heads * hd];
                int sampleStart = t - t % seqLen;
                for (int h = 0; h < s.Heads; h++)
                {
                    int kvh = h / (s.Heads / s.KvHeads);
                    var visible = Enumerable.Range(sampleStart, t - sampleStart + 1)
                        .Where(j => s.SlidingWindow == 0 || t - j < s.SlidingWindow).ToArray();
                    var scores = visible.Select(j =>
                        Enumerable.Range(0, hd).Sum(d => q[t][h * hd + d] * k[j][kvh * hd + d]) / Math.Sqrt(hd)).ToArray();
                    double max = scores.Max();
                    var e = scores.Select(z => Math.Exp(z - max)).ToArray();
                    double sum = e.Sum();
                    for (int i = 0; i < visible.Length; i++)
                        for (int d = 0; d < hd; d++)
                            attention[t][h * hd + d] += e[i] / sum * v[visible[i]][kvh * hd + d];
                }
            }
            for (int t = 0; t < n; t++) Add(hidden[t], Linear(w, p + "self_attn.o_proj", attention[t]));
            for (int t = 0; t < n; t++)
            {
                var m = Norm(hidden[t], w[p + "post_attention_layernorm.weight"], s.Eps);
                var gate = Linear(w, p + "mlp.gate_proj", m);
                var up = Linear(w, p + "mlp.up_proj", m);
                var act = gate.Select((g, i) => g / (1 + Math.Exp(-g)) * up[i]).ToArray();
                Add(hidden[t], Linear(w, p + "mlp.down_proj", act));
            }
        }

        var head = w.Contains("lm_head.weight") ? "lm_head" : "model.embed_tokens";
        return hidden.SelectMany(h => Linear(w, head, Norm(h, w["model.norm.weight"], s.Eps))).ToArray();
    }

    /// <summary>Optional per-head RMSNorm, then rotate-half RoPE at <paramref name="pos"/> with f_i = θ^(−2i/d).</summary>
    static void Head(InMemoryTensors w, string normName, double[] x, int at, int hd, int pos, TinySpec s)
    {
        if (w.Contains(normName))
        {
            var normed = Norm(x.Skip(at).Take(hd).ToArray(), w[normName], s.Eps);
            Array.Copy(normed, 0, x, at, hd);
        }
        int half = hd / 2;
        for (int i = 0; i < half; i++)
        {
            double angle = pos * Math.Pow(s.RopeTheta, -2.0 * i / hd);
            double a = x[at + i], b = x[at + half + i];
            x[at + i] = a * Math.Cos(angle) - b * Math.Sin(angle);
            x[at + half + i] = b * Math.Cos(angle) + a * Math.Sin(angle);
        }
    }

    static double[] Norm(double[] x, float[] weight, double eps)
    {
        double rms = Math.Sqrt(x.Sum(v => v * v) / x.Length + eps);
        return x.Select((v, i) => v / rms * weight[i]).ToArray();
    }

    static double[] Linear(InMemoryTensors w, string name, double[] x)
    {
        var (shape, data) = w.Tensors[name + ".weight"];
        int rows = (int)shape[0], cols = (int)shape[1];
        var y = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            double acc = 0;
            for (int c = 0; c < cols; c++) acc += data[r * cols + c] * x[c];
            y[r] = acc;
        }
        if (w.Contains(name + ".bias")) Add(y, w[name + ".bias"].Select(b => (double)b).ToArray());
        return y;
    }

    static void Add(double[] into, double[] x)
    {
        for (int i = 0; i < into.Length; i++) into[i] += x[i];
    }
}
