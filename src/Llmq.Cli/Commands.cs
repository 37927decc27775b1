using System.CommandLine;

namespace Llmq.Cli;

/// <summary>Every subcommand of the tool, registered explicitly (one file per command).</summary>
internal static class Commands
{
    public static IEnumerable<Command> All() =>
    [
    ];
}
