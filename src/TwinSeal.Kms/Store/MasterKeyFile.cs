using TwinSeal.Attestation.Sim;
using TwinSeal.Crypto;

namespace TwinSeal.Kms.Store;

/// <summary>The master key that seals every KEK at rest: 32 random bytes in a file only the KMS's user may read.</summary>
public static class MasterKeyFile
{
    /// <summary>File name inside the data directory.</summary>
    public const string FileName = "master.key";

    /// <summary>Loads the master key, creating it (mode 0600) on first start. Refuses a file others can read or one of the wrong size.</summary>
    public static KekRoot LoadOrCreate(string dataDirectory)
    {
        var path = Path.Combine(dataDirectory, FileName);
        if (!File.Exists(path))
        {
            using var fresh = SecretBytes.Random(Aes256Key.Length);
            SecretFile.WriteAllBytes(path, fresh.Span);
        }
        if (!OperatingSystem.IsWindows())
        {
            var mode = File.GetUnixFileMode(path);
            if ((mode & (UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite)) != 0)
                throw new InvalidOperationException($"The master key file '{path}' is readable by other users (mode {Convert.ToString((int)mode, 8)}); set it to 0600.");
        }
        var bytes = File.ReadAllBytes(path);
        try
        {
            if (bytes.Length != Aes256Key.Length)
                throw new InvalidOperationException($"The master key file '{path}' must hold exactly {Aes256Key.Length} bytes.");
            return new MasterKeyRoot(new MasterKey(SecretBytes.CopyFrom(bytes)));
        }
        finally
        {
            System.Security.Cryptography.CryptographicOperations.ZeroMemory(bytes);
        }
    }
}
