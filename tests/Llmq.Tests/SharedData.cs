namespace Llmq.Tests;

/// <summary>Locates ../shared (specs, small real models, text, reference vectors) beside the repository root.
/// It exists for developers and CI; elsewhere the tests that need it skip, saying why.</summary>
public static class SharedData
{
    public static readonly string? Root = Find();

    /// <summary>Full path of a file or folder under shared/, or skips the calling test when shared/ is absent.</summary>
    public static string Path(string relative)
    {
        if (Root is null)
            Assert.Skip("../shared (models, data and reference vectors) is not beside the repository root");
        var full = System.IO.Path.Combine(Root, relative);
        if (!File.Exists(full) && !Directory.Exists(full))
            Assert.Skip($"shared/{relative} is not present in this copy of shared/");
        return full;
    }

    static string? Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "Llmq.sln")))
            {
                var shared = System.IO.Path.Combine(dir.FullName, "..", "shared");
                return Directory.Exists(shared) ? System.IO.Path.GetFullPath(shared) : null;
            }
        }
        return null;
    }
}
