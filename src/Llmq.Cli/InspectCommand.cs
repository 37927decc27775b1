using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Serialization;
using Llmq.Checkpoints;

namespace Llmq.Cli;

/// <summary><c>llmq inspect DIR|FILE [--json]</c>: architecture, parameter count, bytes per dtype, shards, quantization.</summary>
internal static class InspectCommand
{
    static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public static Command Create()
    {
        var path = new Argument<string>("path") { Description = "model directory, .safetensors file or safetensors index" };
        var json = new Option<bool>("--json") { Description = "print the report as one JSON object" };
        var command = new Command("inspect", "Describe a model: architecture, parameter count, bytes per dtype, shards, quantization") { path, json };
        command.SetAction(parse => CliErrors.Run(parse.InvocationConfiguration.Error, () =>
        {
            var report = ModelInspector.Inspect(parse.GetValue(path)!);
            var output = parse.InvocationConfiguration.Output;
            if (parse.GetValue(json))
                output.WriteLine(JsonSerializer.Serialize(report, Json));
            else
                Print(report, output);
            return 0;
        }));
        return command;
    }

    static void Print(ModelReport r, TextWriter o)
    {
        o.WriteLine($"{r.Path}  ({r.Format})");
        o.WriteLine($"  architecture   {r.Architecture ?? "unknown (no config.json)"}{(r.ModelType is null ? "" : $" [{r.ModelType}]")}");
        if (r.Shape is not null)
            o.WriteLine($"  shape          {r.Shape}");
        o.WriteLine($"  parameters     {r.ParameterCount:N0} ({Scaled(r.ParameterCount, "")}) in {r.TensorCount} tensors, {Bytes(r.TotalBytes)}");
        foreach (var d in r.DTypes)
            o.WriteLine($"  {d.DType,-14} {d.Tensors,6} tensors {d.Elements,16:N0} elements {Bytes(d.Bytes),12}");
        o.WriteLine($"  shards         {r.Shards.Count}");
        foreach (var s in r.Shards)
            o.WriteLine($"    {s.File}  {s.Tensors} tensors, {Bytes(s.Bytes)}");
        if (r.Quantization is { } q)
        {
            o.WriteLine($"  quantization   {q.Method}{(q.Format is null ? "" : $", format {q.Format}")}");
            foreach (var line in q.Schemes)
                o.WriteLine($"    {line}");
        }
        else
            o.WriteLine("  quantization   none");
    }

    static string Bytes(long n) => Scaled(n, "B");

    static string Scaled(long n, string unit) => n switch
    {
        >= 1_000_000_000 => $"{n / 1e9:0.##} G{unit}",
        >= 1_000_000 => $"{n / 1e6:0.##} M{unit}",
        >= 1_000 => $"{n / 1e3:0.##} K{unit}",
        _ => $"{n} {unit}".TrimEnd(),
    };
}
