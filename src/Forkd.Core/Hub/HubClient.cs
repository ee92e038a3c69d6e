using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using Forkd.Core.Host;
using Forkd.Core.Store;

namespace Forkd.Core.Hub;

/// <summary>
/// Pull (GET, redirects followed) and push (PUT to a presigned URL) of packs. A download is verified
/// and installed while it streams, so nothing of a failed pull stays on disk; errors say what most
/// likely went wrong (tag not published, URL expired, server unreachable, connection dropped).
/// </summary>
public sealed class HubClient : IDisposable
{
    public const string HubVariable = "FORKD_HUB_URL";
    private readonly HttpClient _http;
    private readonly HubTimeouts _timeouts;

    /// <param name="timeouts">Connect and idle limits; <see cref="HubTimeouts"/>' defaults (30 s, 60 s) when null.</param>
    /// <param name="handler">For tests; a <see cref="SocketsHttpHandler"/> otherwise.</param>
    public HubClient(HubTimeouts? timeouts = null, HttpMessageHandler? handler = null)
    {
        _timeouts = timeouts ?? new HubTimeouts();
        handler ??= new SocketsHttpHandler
        {
            AllowAutoRedirect = true,
            MaxAutomaticRedirections = 10,
            ConnectTimeout = _timeouts.Connect,
            AutomaticDecompression = DecompressionMethods.None,
        };
        _http = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
        _http.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("Forkd.PowerShell", "1"));
    }

    /// <summary>
    /// forkd's pull target rule: an http(s) URL (lower-case prefix, as forkd checks it) is used as is; <c>owner/tag</c> becomes
    /// <c>{hub}/{slug}.forkd-snapshot.tar.zst</c>, where every character that is neither alphanumeric in Rust's sense (<see cref="HubSlug"/>)
    /// nor '/' turns into '-'. The hub is <paramref name="hub"/>, else <c>FORKD_HUB_URL</c>.
    /// </summary>
    public static Uri ResolvePullTarget(string target, string? hub, Func<string, string?> env)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(env);
        // forkd compares the prefix exactly (Rust's starts_with): "HTTP://…" is not a URL to it but a short form.
        if (target.StartsWith("http://", StringComparison.Ordinal) || target.StartsWith("https://", StringComparison.Ordinal))
        {
            return Uri.TryCreate(target, UriKind.Absolute, out var direct)
                ? direct
                : throw TargetInvalid(target, "it is not a valid URL");
        }

        if (!target.Contains('/', StringComparison.Ordinal) || target.Contains(' ', StringComparison.Ordinal))
        {
            throw TargetInvalid(target, "expected an http(s) URL or the owner/tag short form");
        }

        var hubBase = string.IsNullOrWhiteSpace(hub) ? env(HubVariable) : hub;
        if (string.IsNullOrWhiteSpace(hubBase))
        {
            // forkd fell back to forkd-hub.deeplethe.com, a host that never existed.
            throw new ForkdException("HubNotConfigured", ForkdErrorKind.InvalidArgument,
                $"'{target}' is a hub short form, but no hub is configured", target)
            {
                Hint = target.StartsWith("http", StringComparison.OrdinalIgnoreCase) && target.Contains("://", StringComparison.Ordinal)
                    ? "Like forkd, only a lower-case http:// or https:// prefix makes a URL; write the scheme in lower case."
                    : $"Pass -Hub <https://base-url> or set ${HubVariable}; or pass the pack's full URL with -Uri.",
            };
        }

        var slug = HubSlug.FromTarget(target);
        var text = hubBase.TrimEnd('/') + "/" + slug + PackFormat.FileSuffix;
        if (!Uri.TryCreate(text, UriKind.Absolute, out var url) || (url.Scheme != Uri.UriSchemeHttp && url.Scheme != Uri.UriSchemeHttps))
        {
            throw TargetInvalid(hubBase, "the hub base is not an http(s) URL");
        }

        return url;
    }

    /// <summary>The URL without user info and query (a presigned URL's query is a credential).</summary>
    public static string Redact(Uri url)
    {
        ArgumentNullException.ThrowIfNull(url);
        var text = $"{url.Scheme}://{url.Authority}{url.AbsolutePath}";
        return url.Query.Length > 1 ? text + "?…" : text;
    }

    /// <summary>Downloads and installs a pack in one streaming pass.</summary>
    public async Task<SnapshotInfo> PullAsync(PackInstaller installer, Uri url, ImportOptions options, IProgress<PackProgress>? progress, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(installer);
        ArgumentNullException.ThrowIfNull(url);
        var shown = Redact(url);
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        using var watchdog = new TransferWatchdog(_timeouts, ct) { Phase = "connecting or waiting for the response headers" };
        using var response = await Send(request, shown, "GET", watchdog, ct).ConfigureAwait(false);
        CheckStatus(response, shown, "GET");
        var length = response.Content.Headers.ContentLength;
        var body = await response.Content.ReadAsStreamAsync(watchdog.Token).ConfigureAwait(false);
        watchdog.Phase = "while downloading the pack";
        watchdog.OnlyWhileReading = true;
        await using var guarded = new TransferGuardStream(body, shown, length, null, watchdog, "GET");
        // The import reads synchronously; closing the body is what unblocks a read from a stalled server (Ctrl+C or timeout).
        await using var abort = watchdog.Token.Register(body.Dispose);
        return await Task.Factory.StartNew(() => installer.Import(guarded, shown, length, options, progress, ct),
            ct, TaskCreationOptions.LongRunning, TaskScheduler.Default).ConfigureAwait(false);
    }

    /// <summary>Packs <paramref name="tag"/> to a temp file and PUTs it with an explicit Content-Length and no Content-Type.</summary>
    public async Task<PublishResult> PublishAsync(ForkdPaths paths, string tag, Uri url, PackOptions options, IProgress<PackProgress>? progress, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(url);
        TagRule.Validate(tag);
        var shown = Redact(url);
        var work = WorkDirectories.Create(paths, WorkDirKind.Push, tag);
        try
        {
            var file = Path.Combine(work, PackFormat.DefaultFileName(tag));
            var pack = await new PackWriter(paths).ExportAsync(tag, file, options, progress, ct).ConfigureAwait(false);
            var clock = Stopwatch.StartNew();
            var report = new ProgressThrottle(progress, "Uploading " + tag, pack.PackedBytes, clock);
            await using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.Asynchronous | FileOptions.SequentialScan);
            using var watchdog = new TransferWatchdog(_timeouts, ct) { Phase = "while uploading or waiting for the response" };
            await using var counted = new TransferGuardStream(stream, shown, pack.PackedBytes, report, watchdog, "PUT");
            using var content = new StreamContent(counted, 256 * 1024);
            content.Headers.ContentLength = pack.PackedBytes;
            using var request = new HttpRequestMessage(HttpMethod.Put, url) { Content = content };
            using var response = await Send(request, shown, "PUT", watchdog, ct).ConfigureAwait(false);
            CheckStatus(response, shown, "PUT");
            report.Final();
            var seconds = Math.Max(clock.Elapsed.TotalSeconds, 0.001);
            return new PublishResult
            {
                Tag = tag,
                Uri = shown,
                StatusCode = (int)response.StatusCode,
                BytesSent = pack.PackedBytes,
                UploadDuration = clock.Elapsed,
                MiBPerSecond = Math.Round(pack.PackedBytes / 1048576.0 / seconds, 1),
                Pack = pack with { Path = shown },
            };
        }
        finally
        {
            SafeDelete.Delete(work);
        }
    }

    private async Task<HttpResponseMessage> Send(HttpRequestMessage request, string shown, string method, TransferWatchdog watchdog, CancellationToken ct)
    {
        try
        {
            return await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, watchdog.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (watchdog.TimedOut && !ct.IsCancellationRequested)
        {
            throw watchdog.Timeout(method, shown, ex);
        }
        catch (Exception ex) when (!ct.IsCancellationRequested && (ex is OperationCanceledException || ex.InnerException is TimeoutException))
        {
            // SocketsHttpHandler.ConnectTimeout: the TCP or TLS handshake did not finish in time.
            throw new ForkdException("HubTimeout", ForkdErrorKind.Timeout,
                $"{method} {shown} timed out connecting ({_timeouts.Connect.TotalSeconds:0.#} s)", shown, ex)
            {
                Hint = "Check that the host is reachable from here; pass -TimeoutSec to wait longer.",
            };
        }
        catch (HttpRequestException ex) when (!ct.IsCancellationRequested)
        {
            var sending = method == "PUT" && ex.HttpRequestError is HttpRequestError.ResponseEnded or HttpRequestError.Unknown;
            throw new ForkdException(sending ? "HubUploadInterrupted" : "HubUnreachable", ForkdErrorKind.ConnectionFailed,
                sending
                    ? $"{method} {shown} failed: the server closed the connection during the upload ({ex.Message})"
                    : $"{method} {shown} failed: cannot reach the server ({ex.Message})",
                shown, ex)
            {
                Hint = sending
                    ? "The presigned URL may have expired or the server rejected the upload; create a fresh URL and retry."
                    : "Check the URL, DNS and whether the server is reachable from this host.",
            };
        }
    }

    private static void CheckStatus(HttpResponseMessage response, string shown, string method)
    {
        if (response.IsSuccessStatusCode)
        {
            return;
        }

        var code = (int)response.StatusCode;
        var status = $"{method} {shown} returned {code} {response.ReasonPhrase}";
        throw code switch
        {
            404 => new ForkdException("HubPackNotFound", ForkdErrorKind.NotFound,
                $"{status}: the pack is probably not published (yet), or the name is misspelt", shown)
            {
                Hint = "Check the owner/tag or URL; the publisher has to Publish-ForkdPack it first.",
            },
            401 or 403 => new ForkdException("HubAccessDenied", ForkdErrorKind.PermissionDenied,
                method == "PUT"
                    ? $"{status}: the presigned URL has probably expired or was signed for other headers (we send Content-Length and no Content-Type)"
                    : $"{status}: the URL has probably expired, or the bucket is private", shown)
            {
                Hint = "Ask for a fresh presigned URL.",
            },
            _ => new ForkdException("HubHttpError", ForkdErrorKind.ProtocolError, status, shown)
            {
                Hint = code == 400 && method == "PUT"
                    ? "400 often means a header mismatch: the URL must be signed without a Content-Type."
                    : "The server refused the request; try again later or check the URL.",
            },
        };
    }

    public void Dispose() => _http.Dispose();

    private static ForkdException TargetInvalid(string target, string why) =>
        new("HubTargetInvalid", ForkdErrorKind.InvalidArgument, $"invalid pull target '{target}': {why}", target);
}
