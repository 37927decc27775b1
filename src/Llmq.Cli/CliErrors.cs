namespace Llmq.Cli;

/// <summary>How every command ends: a user error (<see cref="LlmqException"/>, or the file system refusing) prints one line
/// on stderr and exits 2; cancellation (Ctrl-C) exits 130; anything else is a bug: the full exception, exit 1.</summary>
public static class CliErrors
{
    public const int UserError = 2, InternalError = 1, Cancelled = 130;

    public static int Run(Func<int> body) => Run(Console.Error, body);

    public static int Run(TextWriter error, Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e)
        {
            return Report(error, e);
        }
    }

    public static Task<int> RunAsync(Func<Task<int>> body) => RunAsync(Console.Error, body);

    public static async Task<int> RunAsync(TextWriter error, Func<Task<int>> body)
    {
        try
        {
            return await body();
        }
        catch (Exception e)
        {
            return Report(error, e);
        }
    }

    static int Report(TextWriter error, Exception e)
    {
        switch (e)
        {
            case OperationCanceledException:
                error.WriteLine("llmq: cancelled");
                return Cancelled;
            case LlmqException or IOException or UnauthorizedAccessException:
                error.WriteLine($"llmq: {OneLine(e.Message)}");
                return UserError;
            default:
                error.WriteLine($"llmq: internal error: {e}");
                return InternalError;
        }
    }

    static string OneLine(string message) => message.ReplaceLineEndings(" ");
}
