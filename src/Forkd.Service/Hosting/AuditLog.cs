using System.Text;
using System.Text.Json;

namespace Forkd.Service.Hosting;

/// <summary>One audited request (spec 5.7, plus who and the outcome): written as one JSON line.</summary>
public sealed record AuditEntry(DateTimeOffset Time, string Method, string Path, int Status, long LatencyMicroseconds, string UserAgent,
    string Remote, string Auth, string? Error);

/// <summary>
/// The audit log: one compact JSON object per line, appended and flushed under a lock, for every mutating
/// request and every 401. Keys are written in forkd's (alphabetical) order; <c>auth</c>, <c>error</c> and
/// <c>remote</c> are Forkd's additions.
/// </summary>
public sealed class AuditLog : IDisposable
{
    private readonly FileStream _stream;
    private readonly Lock _gate = new();

    public AuditLog(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(dir))
        {
            Directory.CreateDirectory(dir);
        }

        Path = path;
        _stream = new FileStream(path, new FileStreamOptions
        {
            Mode = FileMode.Append,
            Access = FileAccess.Write,
            Share = FileShare.Read,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        });
    }

    public string Path { get; }

    public void Write(AuditEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("auth", entry.Auth);
            if (entry.Error is not null)
            {
                json.WriteString("error", entry.Error);
            }

            json.WriteNumber("latency_us", entry.LatencyMicroseconds);
            json.WriteString("method", entry.Method);
            json.WriteString("path", entry.Path);
            json.WriteString("remote", entry.Remote);
            json.WriteNumber("status", entry.Status);
            json.WriteString("ts", entry.Time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture));
            json.WriteString("ua", entry.UserAgent);
            json.WriteEndObject();
        }

        buffer.WriteByte((byte)'\n');
        lock (_gate)
        {
            _stream.Write(buffer.GetBuffer(), 0, (int)buffer.Length);
            _stream.Flush();
        }
    }

    public void Dispose() => _stream.Dispose();
}
