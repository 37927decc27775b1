using System.CommandLine;

namespace Llmq.Cli;

/// <summary>Every subcommand of the tool, registered explicitly (one file per command).</summary>
internal static class Commands
{
    public static IEnumerable<Command> All() =>
    [
        InspectCommand.Create(),
        GgufCommand.Create(),
        OneshotCommand.Create(),
        QuantizeCommand.Create(),
        DecompressCommand.Create(),
        EvalCommand.Create(),
    ];

    /// <summary>The `llmq` root command with every subcommand; Program and the in-process CLI tests use it.</summary>
    public static RootCommand Root()
    {
        var root = new RootCommand("llmq — compress large language models after training (GPTQ, RTN, FP8, NVFP4, MXFP4) into compressed-tensors, GPTQ and GGUF checkpoints.");
        foreach (var command in All())
            root.Subcommands.Add(command);
        return root;
    }
}
