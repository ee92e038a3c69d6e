using System.Management.Automation;
using Forkd.Core;

namespace Forkd.PowerShell;

/// <summary>-Path / -LiteralPath resolution with PowerShell's semantics: wildcards, PSDrives, one error per miss.</summary>
internal static class PackPaths
{
    /// <summary>
    /// The file-system paths that <paramref name="paths"/> name. A path that names no file is a non-terminating
    /// PathNotFound with the path as TargetObject; a pattern that matches nothing is one too (as Import-Csv does).
    /// </summary>
    public static List<string> Resolve(PSCmdlet cmdlet, IEnumerable<string> paths, bool literal)
    {
        var files = new List<string>();
        foreach (var path in paths)
        {
            try
            {
                if (literal)
                {
                    var file = cmdlet.SessionState.Path.GetUnresolvedProviderPathFromPSPath(path);
                    if (!File.Exists(file))
                    {
                        throw new ItemNotFoundException(file);
                    }

                    files.Add(file);
                    continue;
                }

                var resolved = cmdlet.SessionState.Path.GetResolvedProviderPathFromPSPath(path, out var provider);
                if (provider.Name != "FileSystem")
                {
                    throw new ForkdException("PathNotFileSystem", ForkdErrorKind.InvalidArgument, $"'{path}' is not a file-system path", path);
                }

                files.AddRange(resolved);
            }
            catch (ItemNotFoundException)
            {
                cmdlet.WriteError(ForkdCmdlet.ToErrorRecord(new ForkdException("PathNotFound", ForkdErrorKind.NotFound,
                    $"cannot find pack file '{path}'", path)
                {
                    Hint = "Check the path; use -LiteralPath for names that contain [ or ].",
                }));
            }
            catch (ForkdException ex)
            {
                cmdlet.WriteError(ForkdCmdlet.ToErrorRecord(ex));
            }
        }

        return files;
    }
}
