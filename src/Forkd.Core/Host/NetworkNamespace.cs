using System.Net.Sockets;
using System.Text;
using static Tmds.Linux.LibC;

namespace Forkd.Core.Host;

/// <summary>
/// Sockets inside another network namespace without moving the process: a socket belongs to the
/// namespace it was created in, so a dedicated thread enters the namespace (setns), creates the
/// socket, goes back and ends. The caller's threads never change namespace.
/// </summary>
public static unsafe class NetworkNamespace
{
    public static string PathOf(string name) => Path.Combine("/run/netns", name);

    public static bool Exists(string name) => File.Exists(PathOf(name));

    /// <summary>A TCP socket whose connections leave from network namespace <paramref name="name"/>.</summary>
    public static Socket CreateTcpSocket(string name)
    {
        Socket? socket = null;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                socket = CreateInside(name);
            }
            catch (Exception ex)
            {
                failure = ex;
            }
        })
        { IsBackground = true, Name = "forkd-netns" };
        thread.Start();
        thread.Join();
        return socket ?? throw (failure as ForkdException ?? new ForkdException("NetworkNamespaceEnterFailed", ForkdErrorKind.Failed,
            $"cannot open a socket in network namespace {name}: {failure?.Message}", name, failure));
    }

    private static Socket CreateInside(string name)
    {
        var own = Open("/proc/thread-self/ns/net");
        var target = Open(PathOf(name));
        try
        {
            if (target < 0)
            {
                throw new ForkdException("NetworkNamespaceNotFound", ForkdErrorKind.NotFound, $"network namespace {name} does not exist", name)
                {
                    Hint = "Initialize-ForkdNetwork creates the child namespaces.",
                };
            }

            if (setns(target, CLONE_NEWNET) != 0)
            {
                throw new ForkdException("NetworkNamespaceEnterFailed", ForkdErrorKind.PermissionDenied,
                    $"cannot enter network namespace {name} (errno {errno}); it needs root", name);
            }

            try
            {
                return new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            }
            finally
            {
                // Back home before the thread ends, so no runtime thread is ever left in a child's namespace.
                if (own < 0 || setns(own, CLONE_NEWNET) != 0)
                {
                    Environment.FailFast("forkd: could not return a thread to its own network namespace");
                }
            }
        }
        finally
        {
            if (target >= 0)
            {
                _ = close(target);
            }

            if (own >= 0)
            {
                _ = close(own);
            }
        }
    }

    private static int Open(string path)
    {
        var bytes = Encoding.UTF8.GetBytes(path + "\0");
        fixed (byte* p = bytes)
        {
            return open(p, O_RDONLY | O_CLOEXEC);
        }
    }
}
