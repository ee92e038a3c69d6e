using Forkd.Core.Host;

namespace Forkd.Core.Store;

/// <summary>File names inside a snapshot directory, as forkd 0.1.3 names them.</summary>
public static class SnapshotFiles
{
    public const string VmState = "vmstate";
    public const string Memory = "memory.bin";
    public const string Metadata = "snapshot.json";
    public const string Rootfs = "rootfs.ext4";

    /// <summary>The guest kernel and initramfs a snapshot carries, so children never depend on the image cache.</summary>
    public const string Kernel = "vmlinux";

    public const string Initramfs = "initramfs.img";

    /// <summary>The shared read-only root disk of big guests (a link to the cache's image where the filesystem allows).</summary>
    public const string RootDisk = "rootdisk.img";

    /// <summary>The files forkd counts and packs, in pack order after the manifest.</summary>
    public static readonly IReadOnlyList<string> Known = [Metadata, VmState, Rootfs, Memory];

    /// <summary>
    /// One file's contribution to the listed size, by forkd's <c>images</c> rule: <c>fs::metadata</c>
    /// follows symbolic links, so a linked <c>memory.bin</c> counts its target (a dangling link counts
    /// nothing). Returns false when there is no such file. Only sizes are read through the link.
    /// </summary>
    public static bool TryListedSize(string path, out long apparentBytes, out long allocatedBytes)
    {
        apparentBytes = allocatedBytes = 0;
        var file = new FileInfo(path);
        if (file.LinkTarget is not null)
        {
            file = File.ResolveLinkTarget(path, returnFinalTarget: true) is FileInfo target ? target : null;
        }

        if (file is null || !file.Exists)
        {
            return false;
        }

        apparentBytes = file.Length;
        allocatedBytes = NativeFile.AllocatedBytes(file.FullName);
        return true;
    }
}
