using TwinSeal.Protocol;

namespace TwinSeal.Apps;

/// <summary>
/// The app's own reading of the output policy: before any data is touched, every request outside the policy is
/// refused with <c>outside-output-policy</c>. The rules are <see cref="OutputPolicy.IsValid"/>, the same code the KMS
/// runs when the policy is agreed (<c>invalid-policy</c>); the app runs them again because it, not the KMS, holds the
/// data, and adds the one rule only it can check: that it serves the recipient.
/// </summary>
internal static class OutputPolicyCheck
{
    /// <summary>Throws <see cref="ProtocolException"/> (<c>outside-output-policy</c>) unless the policy is one this app may run for <paramref name="ownParty"/>.</summary>
    public static void Enforce(OutputPolicy p, string ownParty)
    {
        if (!p.IsValid(out var problem)) throw Refuse(problem);
        // Whatever is released (rows, counts or aggregates) goes only to the recipient the parties agreed on.
        if (!string.Equals(p.Recipient, ownParty, StringComparison.Ordinal))
            throw Refuse($"The output policy releases its result ({p.Result}) to '{p.Recipient}', not to '{ownParty}'.");
    }

    private static ProtocolException Refuse(string message) => new("outside-output-policy", message);
}
