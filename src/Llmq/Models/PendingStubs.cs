// TEMPORARY: stand-ins for the numerics and checkpoints helpers' types (brief's signatures), deleted when they land.
using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Llmq.Checkpoints
{
    public interface ITensorSource
    {
        bool Contains(string name);
        long[] Shape(string name);
        void ReadFloat32(string name, Span<float> dst);
    }

    public sealed class Checkpoint : ITensorSource, IDisposable
    {
        readonly byte[] _file;
        readonly Dictionary<string, (string dtype, long[] shape, long begin, long end)> _t = new();
        readonly long _base;

        Checkpoint(string path)
        {
            _file = File.ReadAllBytes(path);
            long n = (long)BinaryPrimitives.ReadUInt64LittleEndian(_file);
            _base = 8 + n;
            var header = JsonNode.Parse(Encoding.UTF8.GetString(_file, 8, (int)n))!.AsObject();
            foreach (var (name, v) in header)
            {
                if (name == "__metadata__") continue;
                var off = v!["data_offsets"]!.AsArray();
                _t[name] = (v["dtype"]!.GetValue<string>(), v["shape"]!.AsArray().Select(x => x!.GetValue<long>()).ToArray(),
                    off[0]!.GetValue<long>(), off[1]!.GetValue<long>());
            }
        }

        public static Checkpoint Open(string path) =>
            new(Directory.Exists(path) ? System.IO.Path.Combine(path, "model.safetensors") : path);

        public bool Contains(string name) => _t.ContainsKey(name);
        public long[] Shape(string name) => _t[name].shape;

        public void ReadFloat32(string name, Span<float> dst)
        {
            var t = _t[name];
            if (t.dtype != "F32") throw new NotSupportedException(t.dtype);
            var bytes = _file.AsSpan((int)(_base + t.begin), (int)(t.end - t.begin));
            System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes).CopyTo(dst);
        }

        public void Dispose() { }
    }

    public sealed class ModelConfig
    {
        public IReadOnlyList<string> Architectures { get; init; } = [];
        public string ModelType { get; init; } = "";
        public int HiddenSize { get; init; }
        public int NumHiddenLayers { get; init; }
        public int NumAttentionHeads { get; init; }
        public int NumKeyValueHeads { get; init; }
        public int HeadDim { get; init; }
        public int IntermediateSize { get; init; }
        public int VocabSize { get; init; }
        public double RopeTheta { get; init; }
        public double RmsNormEps { get; init; }
        public bool TieWordEmbeddings { get; init; }
        public bool AttentionBias { get; init; }
        public JsonObject Json { get; init; } = new();
        public JsonObject? RopeScaling => Json["rope_scaling"] as JsonObject;
        public string HiddenAct => Json["hidden_act"]?.GetValue<string>() ?? "silu";

        public static ModelConfig Load(string dir)
        {
            var j = JsonNode.Parse(File.ReadAllText(System.IO.Path.Combine(dir, "config.json")))!.AsObject();
            return Parse(j);
        }

        public static ModelConfig Parse(JsonObject j)
        {
            int I(string k, int d = 0) => j[k] is JsonValue v ? v.GetValue<int>() : d;
            int heads = I("num_attention_heads");
            return new ModelConfig
            {
                Architectures = j["architectures"]?.AsArray().Select(x => x!.GetValue<string>()).ToArray() ?? [],
                ModelType = j["model_type"]?.GetValue<string>() ?? "",
                HiddenSize = I("hidden_size"),
                NumHiddenLayers = I("num_hidden_layers"),
                NumAttentionHeads = heads,
                NumKeyValueHeads = I("num_key_value_heads", heads),
                HeadDim = I("head_dim", I("hidden_size") / Math.Max(1, heads)),
                IntermediateSize = I("intermediate_size"),
                VocabSize = I("vocab_size"),
                RopeTheta = j["rope_theta"] is JsonValue t ? t.GetValue<double>() : 10000,
                RmsNormEps = j["rms_norm_eps"] is JsonValue e ? e.GetValue<double>() : 1e-6,
                TieWordEmbeddings = j["tie_word_embeddings"] is JsonValue w && w.GetValue<bool>(),
                AttentionBias = j["attention_bias"] is JsonValue b && b.GetValue<bool>(),
                Json = j,
            };
        }
    }
}
