using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Forkd.Core;
using Forkd.Service.Hosting;

namespace Forkd.Service.Tests;

/// <summary>HTTPS through Kestrel with a certificate made here (CertificateRequest, exported as PEM).</summary>
public class TlsTests
{
    [Fact]
    public async Task Serves_https_with_a_pem_certificate_and_auth_still_applies()
    {
        using var temp = new TempPaths();
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=forkd-test", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        san.AddDnsName("localhost");
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        var certPath = temp.File("cert.pem", certificate.ExportCertificatePem());
        var keyPath = temp.File("key.pem", key.ExportPkcs8PrivateKeyPem());
        var token = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
        var options = new ControllerOptions { CertificatePath = certPath, KeyPath = keyPath, TokenFile = temp.File("token", token) };

        // Trust exactly this certificate (pinned by thumbprint), nothing else.
        string? seen = null;
        var handler = new SocketsHttpHandler
        {
            SslOptions = { RemoteCertificateValidationCallback = (_, cert, _, _) => (seen = cert?.GetCertHashString()) == certificate.Thumbprint },
        };
        await using var c = await TestController.StartAsync(temp.Paths, options, token, handler);
        Assert.Equal("https", c.Address.Scheme);
        using (var health = await c.Client.GetAsync("/healthz"))
        {
            Assert.Equal(HttpStatusCode.OK, health.StatusCode);
            Assert.Equal("{\"ok\":true}", await health.Content.ReadAsStringAsync());
        }

        Assert.Equal(certificate.Thumbprint, seen);
        using (var version = await c.Client.GetAsync("/version"))
        {
            Assert.Equal(HttpStatusCode.OK, version.StatusCode);
        }

        using var anonymous = new HttpClient(new SocketsHttpHandler { SslOptions = { RemoteCertificateValidationCallback = (_, _, _, _) => true } })
        { BaseAddress = c.Address };
        using (var denied = await anonymous.GetAsync("/v1/snapshots"))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, denied.StatusCode);
        }

        // Plain HTTP to the TLS port gets no API answer.
        using var plain = new HttpClient { BaseAddress = new UriBuilder(c.Address) { Scheme = "http" }.Uri };
        plain.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        var plainResult = await Record.ExceptionAsync(async () =>
        {
            using var r = await plain.GetAsync("/v1/snapshots");
            Assert.NotEqual(HttpStatusCode.OK, r.StatusCode);
        });
        Assert.True(plainResult is null or HttpRequestException, plainResult?.ToString());
    }

    [Fact]
    public void A_certificate_without_its_key_or_a_bad_pem_is_refused_at_start()
    {
        using var temp = new TempPaths();
        var half = Assert.Throws<ForkdException>(() => ControllerHost.Build(new ControllerOptions { CertificatePath = temp.File("c.pem", "x") }, temp.Paths));
        Assert.Equal("TlsPairIncomplete", half.ErrorId);
        var bad = Assert.Throws<ForkdException>(() => ControllerHost.Build(
            new ControllerOptions { CertificatePath = temp.File("c.pem", "not pem"), KeyPath = temp.File("k.pem", "not pem") }, temp.Paths));
        Assert.Equal("TlsCertificateInvalid", bad.ErrorId);
    }
}
