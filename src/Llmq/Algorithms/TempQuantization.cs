// TEMPORARY stand-ins for the quant helper's QuantizationArgs/observer; deleted when theirs land on main.
namespace Llmq.Algorithms;

public enum TempStrategy { Tensor, Channel, Group }

public sealed record TempQuantArgs
{
    public int NumBits { get; init; } = 8;
    public bool Symmetric { get; init; } = true;
    public TempStrategy Strategy { get; init; } = TempStrategy.Channel;
    public int? GroupSize { get; init; }
}
