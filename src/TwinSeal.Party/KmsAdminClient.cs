using TwinSeal.Kms.Http;
using TwinSeal.Kms.Store;
using TwinSeal.Protocol;

namespace TwinSeal.Party;

/// <summary>
/// The KMS operator's client: requests authorised by the KMS's admin token rather than by a party signature. Today it
/// issues invitations, each letting one party id register once.
/// </summary>
public sealed class KmsAdminClient(ServiceEndpoint endpoint, string adminToken) : IDisposable
{
    private readonly RemoteClient _remote = new(endpoint);

    /// <summary>
    /// A client of the KMS whose data directory is <paramref name="dataDirectory"/>, from the endpoint file it writes once
    /// listening and the admin token it made at first start (readable only by the KMS's user, who therefore runs this).
    /// </summary>
    public static KmsAdminClient ForDataDirectory(string dataDirectory)
    {
        var endpoint = ServiceEndpointFile.TryRead(dataDirectory)
            ?? throw new ProtocolException("kms-not-running", $"No running KMS found in '{dataDirectory}' (no {ServiceEndpointFile.FileName}); start it with 'twinseal kms serve --data-dir {dataDirectory}'.");
        var tokenPath = Path.Combine(dataDirectory, AdminTokenFile.FileName);
        if (!File.Exists(tokenPath)) throw new ProtocolException("no-admin-token", $"'{dataDirectory}' holds no {AdminTokenFile.FileName}; the KMS makes it at its first start.");
        return new KmsAdminClient(endpoint, File.ReadAllText(tokenPath).Trim());
    }

    /// <summary>A single-use invitation for <paramref name="partyId"/> to register, usable for <paramref name="validHours"/> hours.</summary>
    public Task<Invitation> InviteAsync(string partyId, int validHours = 24)
        => _remote.SendJsonAsync<Invitation>(HttpMethod.Post, $"{KmsEndpoints.Prefix}/invitations", new InvitationRequest(partyId, validHours), bearer: adminToken);

    /// <inheritdoc />
    public void Dispose() => _remote.Dispose();
}
