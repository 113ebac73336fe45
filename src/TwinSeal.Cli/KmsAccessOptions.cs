using System.CommandLine;
using TwinSeal.Kms;
using TwinSeal.Kms.Store;

namespace TwinSeal.Cli;

/// <summary>
/// Who may do what at a KMS: <c>--auditor PARTY</c> (repeatable) names parties that read every key and the whole audit
/// log; <c>--allow-self-registration</c> opens registration to anyone holding a key (closed by default: an invitation or
/// the admin token is needed). Shared by <c>kms serve</c> and <c>party serve --host-kms</c>.
/// </summary>
internal sealed class KmsAccessOptions
{
    private readonly Option<bool> _selfRegistration = new("--allow-self-registration")
    {
        Description = "Let any client register a party with nothing but proof that it holds the party's key. Off by default: registration needs an invitation ('twinseal kms invite') or the admin token.",
    };

    private readonly Option<string[]> _auditors = new("--auditor")
    {
        Description = "A party id that may read every key, policy and proposal and the whole audit log (repeatable); it must be registered to sign its reads. Other parties read only what their keys' policies name them in.",
    };

    public void AddTo(Command command)
    {
        command.Options.Add(_auditors);
        command.Options.Add(_selfRegistration);
        command.Validators.Add(r =>
        {
            foreach (var id in r.GetValue(_auditors) ?? [])
                if (!PartyRegistry.IsValidId(id)) r.AddError($"--auditor '{id}' is not a party id (1–64 letters, digits, '-' or '_').");
        });
    }

    public KmsOptions Apply(ParseResult pr, KmsOptions options)
        => options with { Auditors = pr.GetValue(_auditors) ?? [], AllowSelfRegistration = pr.GetValue(_selfRegistration) };
}
