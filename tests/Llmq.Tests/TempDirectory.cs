namespace Llmq.Tests;

/// <summary>A fresh directory under the system temp folder, deleted on Dispose.</summary>
public sealed class TempDirectory : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("llmq-test-").FullName;

    public string this[string relative] => System.IO.Path.Combine(Path, relative);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // a test left a file mapped; the OS temp cleaner will get it
        }
    }
}

/// <summary>Base of test classes that each get a fresh <see cref="TempDirectory"/> per test (xunit makes one instance per test).</summary>
public abstract class TempDirectoryTests : IDisposable
{
    protected readonly TempDirectory temp = new();

    public void Dispose()
    {
        temp.Dispose();
        GC.SuppressFinalize(this);
    }
}
