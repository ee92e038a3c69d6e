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
}
