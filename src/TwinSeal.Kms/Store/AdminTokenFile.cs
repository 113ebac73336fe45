using System.Security.Cryptography;
using System.Text;
using TwinSeal.Attestation.Sim;

namespace TwinSeal.Kms.Store;

/// <summary>
/// The KMS operator's bearer token: 32 random bytes as hex in a file only the KMS's user may read, made at first start.
/// It admits a party registration on its own, and mints invitations (<see cref="Invitations"/>) that admit one each.
/// </summary>
/// <remarks>
/// Each replica has its own, in its own data directory; the invitations it mints live in the shared store, so any replica
/// honours them. Only a hash is kept in memory, and presented tokens are compared in constant time.
/// </remarks>
public sealed class AdminTokenFile
{
    /// <summary>File name inside the data directory.</summary>
    public const string FileName = "admin.token";

    private readonly byte[] _hash;

    private AdminTokenFile(string path, byte[] hash)
    {
        Path = path;
        _hash = hash;
    }

    /// <summary>Where the token is.</summary>
    public string Path { get; }

    /// <summary>Loads the token, creating it (mode 0600) on first start. Refuses a file others can read, or one that holds no token.</summary>
    public static AdminTokenFile LoadOrCreate(string dataDirectory)
    {
        var path = System.IO.Path.Combine(dataDirectory, FileName);
        if (!File.Exists(path)) SecretFile.WriteAllText(path, Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32)));
        if (!OperatingSystem.IsWindows())
        {
            var mode = File.GetUnixFileMode(path);
            if ((mode & (UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite)) != 0)
                throw new InvalidOperationException($"The admin token file '{path}' is readable by other users (mode {Convert.ToString((int)mode, 8)}); set it to 0600.");
        }
        var token = File.ReadAllText(path).Trim();
        // Shorter than the 64 hex digits this class writes would be guessable; an operator who replaces it must keep it long.
        if (token.Length < 32) throw new InvalidOperationException($"The admin token file '{path}' must hold at least 32 characters.");
        return new AdminTokenFile(path, SHA256.HashData(Encoding.UTF8.GetBytes(token)));
    }

    /// <summary>Whether <paramref name="presented"/> is this KMS's admin token.</summary>
    public bool Matches(string presented) => CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(presented)), _hash);
}
