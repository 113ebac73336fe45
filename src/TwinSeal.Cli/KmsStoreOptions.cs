using System.CommandLine;
using TwinSeal.Kms;

namespace TwinSeal.Cli;

/// <summary>
/// Where a KMS keeps its state: <c>--postgres</c> (or <c>TWINSEAL_KMS_POSTGRES</c>, so a password need not appear in
/// the process list) for a PostgreSQL store shared by replicas, and the <c>--pkcs11-*</c> options (PIN from
/// <c>TWINSEAL_PKCS11_PIN</c>) for a KEK root held in an HSM. Without them: SQLite and the master key file.
/// </summary>
internal sealed class KmsStoreOptions(bool withRoot = true)
{
    private const string PostgresVariable = "TWINSEAL_KMS_POSTGRES";
    private const string PinVariable = "TWINSEAL_PKCS11_PIN";

    private readonly Option<string?> _postgres = new("--postgres") { Description = $"PostgreSQL connection string (Npgsql syntax) of a store shared by KMS replicas; default: ${PostgresVariable}, else the SQLite file in --data-dir." };
    private readonly Option<string?> _library = new("--pkcs11-library") { Description = "PKCS#11 module holding the KEK root (e.g. /usr/lib/softhsm/libsofthsm2.so); the user PIN comes from $" + PinVariable + ". Default: the master key file in --data-dir." };
    private readonly Option<string?> _token = new("--pkcs11-token") { Description = "Label of the PKCS#11 token holding the KEK root." };
    private readonly Option<string> _keyLabel = new("--pkcs11-key-label") { Description = "Label of the AES root key in the token (created, non-extractable, when missing).", DefaultValueFactory = _ => "twinseal-kek-root" };

    public void AddTo(Command command)
    {
        command.Options.Add(_postgres);
        if (withRoot)
        {
            command.Options.Add(_library);
            command.Options.Add(_token);
            command.Options.Add(_keyLabel);
        }
        command.Validators.Add(r =>
        {
            if (!withRoot) return;
            var library = r.GetValue(_library);
            if ((library is null) != (r.GetValue(_token) is null))
                r.AddError("--pkcs11-library and --pkcs11-token go together.");
            else if (library is not null && string.IsNullOrEmpty(Environment.GetEnvironmentVariable(PinVariable)))
                r.AddError($"The PKCS#11 user PIN is read from ${PinVariable}, which is not set.");
            else if (library is not null && !File.Exists(library))
                r.AddError($"The PKCS#11 module '{library}' does not exist.");
        });
    }

    public bool HasPostgres(System.CommandLine.Parsing.CommandResult r)
        => r.GetValue(_postgres) is not null || !string.IsNullOrEmpty(Environment.GetEnvironmentVariable(PostgresVariable));

    public KmsOptions Apply(ParseResult pr, KmsOptions options)
    {
        var postgres = pr.GetValue(_postgres) ?? NullIfEmpty(Environment.GetEnvironmentVariable(PostgresVariable));
        var root = withRoot && pr.GetValue(_library) is { } library
            ? new Pkcs11RootOptions
            {
                LibraryPath = library,
                TokenLabel = pr.GetValue(_token)!,
                UserPin = Environment.GetEnvironmentVariable(PinVariable)!,
                KeyLabel = pr.GetValue(_keyLabel)!,
            }
            : null;
        return options with { PostgresConnectionString = postgres, Pkcs11Root = root };
    }

    private static string? NullIfEmpty(string? s) => string.IsNullOrEmpty(s) ? null : s;
}
