using DuckDB.NET.Data;
using DuckDB.NET.Native;
using TwinSeal.Apps.Engine;
using TwinSeal.Apps.Privacy;
using TwinSeal.Protocol;
using TwinSeal.Protocol.Apps;

namespace TwinSeal.Apps;

/// <summary>
/// The one app of the measured bundle (named <c>secure-match</c> after the bundle). It first enforces the output policy
/// (refusing anything outside it with <c>outside-output-policy</c>), then runs the computation the policy names:
/// <c>secure-match</c> (<see cref="SecureMatch"/>), <c>data-integration</c> (<see cref="DataIntegration"/>) or
/// <c>aggregate</c> (<see cref="Aggregates"/>). Whatever it releases goes to the policy's recipient only, which must be
/// the party this enclave serves. Keys match exactly (ordinal) after the agreed normalisation; an empty key matches nothing.
/// </summary>
public sealed class SecureMatchApp : IEnclaveApp
{
    // A build marker the demo's tampered-app attack flips one byte of; changing it changes nothing but the measurement.
    internal const string BuildMarker = "TWINSEAL-SECURE-MATCH-APP-BUILD-1";

    private readonly RandomSource _random;

    /// <summary>The app as the isolated area runs it: noise from the operating system's CSPRNG.</summary>
    public SecureMatchApp()
        : this(CryptoRandomSource.Instance)
    {
    }

    /// <summary>The app with pinned randomness, so a test of the noise gives the same verdict on every run.</summary>
    internal SecureMatchApp(RandomSource random) => _random = random;

    /// <inheritdoc />
    public string Name => "secure-match";

    /// <summary>
    /// With differential privacy: the policy enforced and the exact result computed once, then the draw of one noisy
    /// release. <see cref="Run"/> draws once; a test of the noise's distribution draws many times from one computation.
    /// </summary>
    internal static Func<RandomSource, AppOutput> PrepareNoisyRelease(AppInput input)
    {
        OutputPolicyCheck.Enforce(input.Policy, input.OwnParty);
        var privacy = input.Policy.DifferentialPrivacy ?? throw new ArgumentException("The output policy sets no differential privacy.", nameof(input));
        return NoisyRelease.Prepare(input, privacy);
    }

    /// <inheritdoc />
    public IDisposable? Begin(AppStart start)
    {
        // A noisy release reads its tables its own way (Privacy/), once the exact result is allowed at all.
        if (start.Policy.DifferentialPrivacy is not null) return null;
        try
        {
            OutputPolicyCheck.Enforce(start.Policy, start.OwnParty);
            return start.Policy.Computation switch
            {
                Computations.SecureMatch => SecureMatch.Begin(start),
                Computations.DataIntegration => DataIntegration.Begin(start),
                Computations.Aggregate or Computations.Analysis => EngineTables.Begin(start.Own),
                _ => null,
            };
        }
        catch (ProtocolException)
        {
            // Run refuses the same request, in its own order and words.
            return null;
        }
    }

    /// <inheritdoc />
    public AppOutput Run(AppInput input)
    {
        OutputPolicyCheck.Enforce(input.Policy, input.OwnParty);
        if (input.Analysis is { } chosen && input.Policy.Computation != Computations.Analysis)
            throw new ProtocolException("outside-output-policy", $"Analysis '{chosen.Name}' was asked for, but the output policy runs '{input.Policy.Computation}', not approved SQL analyses.");
        try
        {
            // With differential privacy, the exact result is computed and then released only with noise (Privacy/).
            if (input.Policy.DifferentialPrivacy is { } privacy) return NoisyRelease.Run(input, privacy, _random);
            return input.Policy.Computation switch
            {
                Computations.SecureMatch => SecureMatch.Run(input),
                Computations.DataIntegration => DataIntegration.Run(input),
                Computations.Aggregate => Aggregates.Run(input),
                Computations.Analysis => Analyses.ApprovedAnalysis.Run(input),
                _ => throw new ProtocolException("outside-output-policy", $"The output policy names computation '{input.Policy.Computation}', which this app does not run."),
            };
        }
        catch (DuckDBException e) when (e.ErrorType == DuckDBErrorType.OutOfMemory)
        {
            // The engine may not spill (Engine/IsolatedDatabase.cs); the message is ours, DuckDB's could quote data.
            throw new ProtocolException("engine-out-of-memory", "The computation needs more memory than the isolated area's engine may use (it never spills to disk); nothing was released. Give the enclave more memory.");
        }
    }
}
