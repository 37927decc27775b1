namespace Llmq.Checkpoints;

/// <summary>A model directory that appears only when complete: everything is written into a temporary sibling
/// (<see cref="Path"/>), <see cref="Publish"/> renames it into place, and Dispose without Publish deletes it.</summary>
public sealed class OutputDirectory : IDisposable
{
    public string FinalPath { get; }
    /// <summary>The temporary directory to write into.</summary>
    public string Path { get; }
    readonly bool overwrite;
    bool published;

    OutputDirectory(string finalPath, string path, bool overwrite)
    {
        FinalPath = finalPath;
        Path = path;
        this.overwrite = overwrite;
    }

    /// <summary>Refuses an existing <paramref name="finalPath"/> unless <paramref name="overwrite"/>.</summary>
    public static OutputDirectory Create(string finalPath, bool overwrite)
    {
        var full = System.IO.Path.GetFullPath(finalPath).TrimEnd(System.IO.Path.DirectorySeparatorChar);
        if ((Directory.Exists(full) || File.Exists(full)) && !overwrite)
            throw new LlmqException($"{finalPath} already exists (pass --overwrite to replace it)");
        var parent = System.IO.Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(parent);
        var temp = System.IO.Path.Combine(parent, $".{System.IO.Path.GetFileName(full)}.tmp-{Guid.NewGuid():N}");
        Directory.CreateDirectory(temp);
        return new OutputDirectory(full, temp, overwrite);
    }

    /// <summary>Moves the finished directory into place (replacing the old one when overwriting).</summary>
    public void Publish()
    {
        if (published)
            throw new InvalidOperationException($"{FinalPath} was already published");
        string? old = null;
        if (Directory.Exists(FinalPath) || File.Exists(FinalPath))
        {
            if (!overwrite)
                throw new LlmqException($"{FinalPath} appeared while it was being written");
            old = Path + ".old";
            if (Directory.Exists(FinalPath))
                Directory.Move(FinalPath, old);
            else
                File.Move(FinalPath, old);
        }
        Directory.Move(Path, FinalPath);
        published = true;
        if (old is not null)
        {
            if (Directory.Exists(old))
                Directory.Delete(old, recursive: true);
            else
                File.Delete(old);
        }
    }

    public void Dispose()
    {
        if (!published && Directory.Exists(Path))
            Directory.Delete(Path, recursive: true);
    }
}
