using TwinSeal.Protocol;

namespace TwinSeal.Kms;

/// <summary>A request the KMS refuses; maps to an RFC 9457 problem with <see cref="ProtocolException.Code"/> and <see cref="Status"/>.</summary>
public sealed class KmsException(int status, string code, string message) : ProtocolException(code, message)
{
    /// <summary>HTTP status for the problem.</summary>
    public int Status { get; } = status;

    /// <summary>True when the transaction that refused must still commit, so the refusal's audit record survives.</summary>
    public bool KeepChanges { get; private set; }

    /// <summary>Marks the refusal as recorded: the surrounding write transaction commits before it is thrown on.</summary>
    public KmsException Recorded()
    {
        KeepChanges = true;
        return this;
    }

    /// <summary>400 for a request that cannot be understood.</summary>
    public static KmsException BadRequest(string code, string message) => new(400, code, message);
    /// <summary>401 for a request whose signature does not authenticate.</summary>
    public static KmsException Unauthenticated(string code, string message) => new(401, code, message);
    /// <summary>403 for an authenticated request that is not allowed.</summary>
    public static KmsException Forbidden(string code, string message) => new(403, code, message);
    /// <summary>404 for a missing key, party or proposal.</summary>
    public static KmsException NotFound(string code, string message) => new(404, code, message);
    /// <summary>409 for a request that conflicts with current state.</summary>
    public static KmsException Conflict(string code, string message) => new(409, code, message);
    /// <summary>410 for something that existed and is gone for good.</summary>
    public static KmsException Gone(string code, string message) => new(410, code, message);
}
